"""Acquisition: which unaligned items to send to the annotator (Algorithm 1 and its baselines).

Building blocks (pure, jitted cores; validated wrappers raise ValueError before any device work):
  min_distances(points[N,d], centers[M,d], *, metric) -> f32[N]     nearest-center distance (+inf if M=0)
  kcenter_greedy(points, num_select, centers=None, *, metric) -> (int32[k], f32[N])
  margins(queries[Q,d], candidates[N,d]) -> f32[Q]                  top-1 minus top-2 of q @ c.T
All of them stream over blocks: no N x M matrix is ever built, only one block of it at a time
(16 MiB, or [N, 64] floats for nearest-center search over N > 65k points), independent of M.
Metrics: "euclidean" and "cosine" (1 - cos, Appendix C.3); float32 with HIGHEST-precision dots.

One round from scratch (notebooks, streaming buffers):
  sel = select("ours", pools, annotated, batch_size=B, coreset_size=B_C, key=key)
  sel.modality[i], sel.index[i]: the i-th pick is pools[sel.modality[i]][sel.index[i]].
Strategies: "ours", "random", "coreset", "uncertainty", "badge" (see `select`), or your own.
Tie rules:
k-center ties go to the lowest index (so with nothing annotated the first center is index 0);
"ours" picks the least-covered modality, ties (e.g. every gap +inf when nothing is annotated) to
the lowest modality index; equal margins keep coreset pick order. "random", "coreset" and "badge"
are decided by `key`; "ours" and "uncertainty" are deterministic.
Your own strategy (strategies.py), without editing the package: a round function with the
built-ins' signature, passed to `select` as a value or listed in config.strategies as a
"module:function" path (imported when the config is checked):
  def farthest(state, modality, *, batch_size, coreset_size, key):
    # state.pools[m]: f32[N_m, d]; state.min_distances()[m]: f32[N_m] distance to annotated (+inf
    # while none); modality: int, the modality to pick from (the strategy's own rule: "random").
    return jnp.argsort(-state.min_distances()[modality])[:batch_size]    # int[B] into pools[m]
  sel = select(farthest, pools, annotated, batch_size=B, coreset_size=B_C, key=key)
  sel = select(Strategy("farthest", farthest, modality="coverage"), ...)  # own modality rule
`as_strategy(x)` resolves a name, path, function or Strategy (one-line ValueError when it does
not resolve); BUILTINS maps each built-in's name to its Strategy value; examples.py holds the one
above as the path "mmal_jax.acquisition.examples:farthest". The picks a strategy
returns are checked: shape [B], integers, no item twice, every index inside its pool.

Streaming (Section 4.2): call `select` with pools = the current buffer's embeddings and annotated =
everything annotated so far; what is not picked is simply dropped by the caller.

Query-modality rule (`modality=` of `select` / `select_from_state`; Table 2 and Fig. 4 right):
  None      each strategy's own rule: the coverage gap (step 1 of Algorithm 1) for "ours", a
            uniformly random modality for "random"/"coreset"/"badge", every modality for
            "uncertainty";
  "random"  a uniformly random modality drawn from `key`, for every strategy ("ours": replaces
            step 1 only);
  int m     modality m only, for every strategy ("uncertainty": only m's items, ranked by their
            margins against the other modalities).
Validated with the other inputs, before any device work.

Budget: the caller buys the picks best first and skips a pick that an earlier query of the round
revealed as its partner. `picks_for_budget(strategy, budget, sizes, modality=None)` says how many
picks to request so that `budget` queries are still spent: min(2 * budget, sum(sizes)) for
"uncertainty" over every modality (each query reveals at most one other pick), `budget` for any
single-modality selection (its picks cannot reveal each other).

Incremental form for the active-learning loop (fixed embeddings across rounds):
  state = init_state(pools, annotated, metric="euclidean")      # O(N |S| d), once
  for each round:
    sel = select_from_state("ours", state, batch_size=B, coreset_size=B_C, key=key)
    ... the oracle answers; per modality m collect
        removed[m]: positions in state.pools[m] that left the pool (picks + revealed partners),
        added[m]:   [k_m, d] embeddings of the items that joined the annotated set,
    state = update_state(state, removed, added)                  # O(N B d)
    ids[m] = np.delete(ids[m], removed[m])                       # keep the caller's ids aligned
`AcquisitionState` holds, per modality, the pool (f32[N_m, d]) and min_sq (f32[N_m], squared distance
to the nearest annotated item of that modality, +inf while none); `update_state` deletes rows in
order (like np.delete) and tightens min_sq with the new annotated items only, so a round costs
O(N (B + B_C) d) instead of O(N |S| d) and selects exactly what `select` on the same pools and
annotated sets selects (up to float32 rounding of near-tied distances). The cache is only valid
while the embeddings do not change: after retraining the encoders, call `init_state` again with the
new embeddings.

Compiles: every pool and annotated set is padded to a bucketed row count (padding.py: multiples of
256 rows, at most 3.1% extra beyond 8k), and the padding is masked inside the jitted code, so
the rounds of a shrinking pool reuse the compiled programs instead of compiling each round.

Sharding: pools may be jax.Arrays sharded along N (NamedSharding(mesh, P("data", None))); the
functions run under jit on them and select the same items as on one device.
Multi-host: pools may be global arrays sharded by rows over every process's devices
(`mesh.global_rows`), their row count rounded up to a multiple of the device count; pass the real
counts as `sizes=` to `select` / `init_state` (the extra rows are padding, never picked).
Storage: `storage="bfloat16"` (`select`, `init_state`) keeps the pools in bfloat16, halving the
bytes every k-center pass reads; the arithmetic stays float32, on the rounded values.
Precision note: distances use |x|^2 + |c|^2 - 2<x,c> in float32, whose absolute error is ~1e-6 on
squared distances of unit vectors; near-ties below that may be ordered differently than in float64.
"""

from mmal_jax.acquisition.distances import min_distances
from mmal_jax.acquisition.kcenter import kcenter_greedy
from mmal_jax.acquisition.scores import margins
from mmal_jax.acquisition.select import BUILTINS
from mmal_jax.acquisition.select import STRATEGIES
from mmal_jax.acquisition.select import Selection
from mmal_jax.acquisition.select import as_strategy
from mmal_jax.acquisition.select import picks_for_budget
from mmal_jax.acquisition.select import select
from mmal_jax.acquisition.select import select_from_state
from mmal_jax.acquisition.state import AcquisitionState
from mmal_jax.acquisition.state import init_state
from mmal_jax.acquisition.state import update_state
from mmal_jax.acquisition.strategies import Strategy

__all__ = [
    "AcquisitionState",
    "BUILTINS",
    "STRATEGIES",
    "Selection",
    "Strategy",
    "as_strategy",
    "init_state",
    "kcenter_greedy",
    "margins",
    "min_distances",
    "picks_for_budget",
    "select",
    "select_from_state",
    "update_state",
]
