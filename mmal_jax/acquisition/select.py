"""One acquisition round: Algorithm 1 ("ours") and the baselines of Appendix B.1 / C.4, each a
`Strategy` value (strategies.py), and `select`, which runs any strategy: a built-in's name, a
`Strategy`, a round function or a "module:function" path."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmal_jax.acquisition import badge as badge_lib
from mmal_jax.acquisition import checks
from mmal_jax.acquisition import kcenter
from mmal_jax.acquisition import padding
from mmal_jax.acquisition import scores
from mmal_jax.acquisition import state as state_lib
from mmal_jax.acquisition import strategies
from mmal_jax.acquisition.strategies import Strategy

# The built-in strategies' names, in the order of the paper's comparisons (`BUILTINS` holds them).
STRATEGIES = ("ours", "random", "coreset", "uncertainty", "badge")


@dataclasses.dataclass(frozen=True)
class Selection:
  """The B items to send to the annotator.

  Attributes:
    modality: int32[B] modality of each pick.
    index: int32[B] position of each pick in pools[modality] (the state's pool).
  """

  modality: np.ndarray
  index: np.ndarray


def _summed_margins(queries, pools, sizes, skip):
  """f32[Q]: sum over modalities o != skip of margin(queries vs the sizes[o] rows of pools[o])
  (Section 4.2 for M >= 3)."""
  return sum(
      scores.margins_f32(queries, p, num_candidates=n)
      for o, (p, n) in enumerate(zip(pools, sizes))
      if o != skip
  )


@functools.partial(jax.jit, static_argnames=("modality", "coreset_size", "batch_size"))
def _ours(pools, sizes, cache, modality, coreset_size, batch_size):
  """Steps 2-3 of Algorithm 1 on modality m*: (int32[B] indices, lowest summed margin first).

  pools: padded f32[P_m, d]; sizes: int32[] real rows per modality; cache: f32[P_{m*}], -inf on
  padding, so k-center never picks a padded row.
  """
  coreset, _ = kcenter.kcenter_sq(pools[modality], cache, coreset_size)
  score = _summed_margins(pools[modality][coreset], pools, sizes, modality)
  # Stable: equal scores keep coreset (pick) order.
  return coreset[jnp.argsort(score, stable=True)[:batch_size]]


@functools.partial(jax.jit, static_argnames=("batch_size", "modalities"))
def _uncertainty(pools, sizes, batch_size, modalities):
  """Algorithm 4: the B lowest (summed) margins over every item of the modalities `modalities`
  (static tuple: all of them by default, one when the query modality is fixed), each scored
  against all items of every other modality.

  Returns (int32[B] modality, int32[B] index), lowest margin first; ties go to the lower modality,
  then the lower index. Padded rows score +inf, behind every real item.
  """
  score = jnp.concatenate(
      [
          jnp.where(
              padding.valid_rows(pools[m].shape[0], sizes[m]),
              _summed_margins(pools[m], pools, sizes, m),
              jnp.inf,
          )
          for m in modalities
      ]
  )
  order = jnp.argsort(score, stable=True)[:batch_size]
  modality = jnp.concatenate([jnp.full(pools[m].shape[0], m, jnp.int32) for m in modalities])
  index = jnp.concatenate([jnp.arange(pools[m].shape[0], dtype=jnp.int32) for m in modalities])
  return modality[order], index[order]


@functools.partial(jax.jit, static_argnames=("rows", "batch_size"))
def _random_subset(key, size, rows, batch_size):
  """int32[B]: B distinct uniformly random indices below `size` (traced), in random order; `rows`
  (static, >= size) is the bucketed size, so one compile serves a shrinking pool."""
  u = jnp.where(padding.valid_rows(rows, size), jax.random.uniform(key, (rows,)), jnp.inf)
  return jnp.argsort(u)[:batch_size].astype(jnp.int32)


@jax.jit
def _largest_gaps(min_sq):
  return jnp.stack([jnp.max(c) for c in min_sq])


def _random_modality(key, num_modalities):
  return int(jax.random.randint(key, (), 0, num_modalities))


def _query_modality(strategy, modality, state, key_modality):
  """The modality this round queries (int), or None for a strategy whose own rule is "any"."""
  if checks.is_fixed_modality(modality):
    return int(modality)
  if modality == "random" or strategy.modality == "random":
    return _random_modality(key_modality, len(state.sizes))
  if strategy.modality == "coverage":
    # Step 1: the least-covered modality. With nothing annotated every gap is +inf; like every
    # tie, it goes to the lowest modality index (np.argmax keeps the first maximum).
    return int(np.argmax(np.asarray(_largest_gaps(state.padded_min_sq))))
  return None


def _valid(state):
  return tuple(np.int32(n) for n in state.sizes)


# The built-ins' round functions (signature: see strategies.py). `modality` is an int except for
# "uncertainty" (own rule "any"), where None means every modality.
def _ours_round(state, modality, *, batch_size, coreset_size, key):
  del key  # deterministic
  return _ours(
      state.padded_pools,
      _valid(state),
      state.padded_min_sq[modality],
      modality,
      coreset_size,
      batch_size,
  )


def _random_round(state, modality, *, batch_size, coreset_size, key):
  del coreset_size
  return _random_subset(
      key, _valid(state)[modality], state.padded_pools[modality].shape[0], batch_size
  )


def _coreset_round(state, modality, *, batch_size, coreset_size, key):
  del coreset_size, key
  index, _ = kcenter.kcenter_sq(
      state.padded_pools[modality], state.padded_min_sq[modality], batch_size
  )
  return index


def _uncertainty_round(state, modality, *, batch_size, coreset_size, key):
  del coreset_size, key  # deterministic
  every = tuple(range(len(state.sizes))) if modality is None else (modality,)
  return _uncertainty(state.padded_pools, _valid(state), batch_size, every)


def _badge_round(state, modality, *, batch_size, coreset_size, key, logit_scale):
  del coreset_size
  # BADGE's gradient embeddings are computed in float32 (a no-op for float32 storage).
  pools, valid = tuple(p.astype(jnp.float32) for p in state.padded_pools), _valid(state)
  others = [(p, n) for o, (p, n) in enumerate(zip(pools, valid)) if o != modality]
  return badge_lib.badge(pools[modality], valid[modality], others, key, batch_size, logit_scale)


# The built-ins' checks (signature: Strategy.check), before any device work.
def _ours_check(sizes, *, batch_size, coreset_size, modality):
  del batch_size
  checks.check_every_modality(sizes)
  checks.check_pools_hold(sizes, modality, coreset_size, "coreset_size")


def _uncertainty_check(sizes, *, batch_size, coreset_size, modality):
  del coreset_size
  checks.check_every_modality(sizes)
  if modality is None:
    checks.check_total(sizes, batch_size)
  else:
    checks.check_pools_hold(sizes, modality, batch_size, "batch_size")


def _badge_check(sizes, *, batch_size, coreset_size, modality):
  del coreset_size
  checks.check_every_modality(sizes)
  checks.check_pools_hold(sizes, modality, batch_size, "batch_size")


def badge(logit_scale=10.0):
  """The "badge" Strategy with inverse temperature `logit_scale` (see `select_from_state`)."""
  return Strategy(
      "badge",
      functools.partial(_badge_round, logit_scale=logit_scale),
      modality="random",
      coverage=False,
      check=_badge_check,
  )


# The built-in strategies as values. "random" and "coreset" use the default check (batch_size
# items in each pool they may draw from).
BUILTINS = {
    "ours": Strategy("ours", _ours_round, modality="coverage", coverage=True, check=_ours_check),
    "random": Strategy("random", _random_round, modality="random", coverage=False),
    "coreset": Strategy("coreset", _coreset_round, modality="random", coverage=True),
    "uncertainty": Strategy(
        "uncertainty", _uncertainty_round, modality="any", coverage=False, check=_uncertainty_check
    ),
    "badge": badge(),
}
assert tuple(BUILTINS) == STRATEGIES


def as_strategy(strategy, *, logit_scale=10.0) -> Strategy:
  """The `Strategy` a caller means; raises a one-line ValueError before any device work.

  Args:
    strategy: a built-in's name (one of STRATEGIES), a "module:function" path (imported now; see
      strategies.load), a `Strategy` (its fields checked), or a round function
      `fn(state, modality, *, batch_size, coreset_size, key)` (wrapped as Strategy(fn.__name__,
      fn): own modality rule "random", distances to the annotated set computed).
    logit_scale: BADGE's inverse temperature, for the name "badge" only.
  """
  if isinstance(strategy, Strategy):
    return strategies.validated(strategy)
  if isinstance(strategy, str):
    if strategy == "badge":
      return badge(logit_scale) if logit_scale != 10.0 else BUILTINS["badge"]
    if strategy in BUILTINS:
      return BUILTINS[strategy]
    if ":" in strategy:
      return strategies.load(strategy)
    raise ValueError(
        f"strategy={strategy!r} is unknown; use one of {STRATEGIES}, a Strategy, a "
        "function or a 'module:function' path."
    )
  if callable(strategy):
    return Strategy(getattr(strategy, "__name__", repr(strategy)), strategy)
  raise ValueError(
      f"strategy={strategy!r} is unknown; use one of {STRATEGIES}, a Strategy, a "
      "function or a 'module:function' path."
  )


def _select(strategy, state, batch_size, coreset_size, key, modality):
  """`select_from_state` for a resolved strategy, without the input checks (the callers ran them
  once)."""
  key_modality, key_items = jax.random.split(key)
  m = _query_modality(strategy, modality, state, key_modality)
  picks = strategy.select(state, m, batch_size=batch_size, coreset_size=coreset_size, key=key_items)
  return Selection(*checks.check_picks(strategy.name, picks, state.sizes, batch_size, m))


def select_from_state(
    strategy, state, *, batch_size, coreset_size, key, logit_scale=10.0, modality=None
):
  """One acquisition round on an `AcquisitionState` (see `select` for the strategies).

  Args:
    strategy: "ours", "random", "coreset", "uncertainty" or "badge", or your own: a `Strategy`, a
      round function or a "module:function" path (see `as_strategy` and strategies.py).
    state: pools and min-distance caches (`init_state`, `update_state`).
    batch_size: B, items picked this round.
    coreset_size: B_C >= B, size of the coreset of "ours" (checked for every strategy).
    key: PRNG key; decides "random" (modality and items), "coreset" and "badge" (modality, and
      BADGE's sampling), and the modality of every strategy under modality="random". "ours" and
      "uncertainty" are otherwise deterministic. Split in two: the modality draw uses the first
      half, the strategy's round function gets the second.
    logit_scale: inverse temperature of BADGE's class probabilities softmax(scale * <x, y>)
      (SigLIP's initial exp(t) = 10); read for the name "badge" only.
    modality: the query-modality rule. None: each strategy's own (Algorithm 1's coverage gap for
      "ours", a uniformly random modality for "random"/"coreset"/"badge", every modality for
      "uncertainty"; Strategy.modality for your own); "random": a uniformly random modality drawn
      from `key` for every strategy (for "ours" it replaces step 1 only; for
      "random"/"coreset"/"badge" it is the same draw as None); an int m: modality m only, for every
      strategy ("uncertainty" then ranks the items of m by their margins against the other
      modalities).
  Returns:
    Selection with B picks.
  Raises:
    ValueError (one line) on an unknown strategy, bad sizes or modality rule (before any device
    work), or picks of the wrong shape, duplicates or out-of-range indices from the strategy.
  """
  strategy = as_strategy(strategy, logit_scale=logit_scale)
  checks.check_round(
      strategy, state.sizes, batch_size=batch_size, coreset_size=coreset_size, modality=modality
  )
  return _select(strategy, state, batch_size, coreset_size, key, modality)


def select(
    strategy,
    pools,
    annotated,
    *,
    batch_size,
    coreset_size,
    key,
    metric="euclidean",
    logit_scale=10.0,
    modality=None,
    sizes=None,
    storage="float32",
):
  """One acquisition round from scratch.

  Strategies (with modality=None; see `select_from_state` for the other modality rules):
    "ours": Algorithm 1. m* = argmax_m max_{x in D^m} min_{s in S^m} d(x, s) (ties, including the
      all-+inf gaps of an empty annotated set: lowest modality index); greedy k-center of B_C
      points of D^{m*} starting from the centers S^{m*}; the B coreset points with the lowest
      margin against all of D^o (summed over o != m* when M >= 3).
    "random": a uniformly random modality, B distinct items of it uniformly at random (by the
      ranks of uniform draws, so the compiled program is shared by every pool size in a bucket).
    "coreset": a uniformly random modality, greedy k-center of B points from its S^m.
    "uncertainty": margins of every item of every modality against all items of the others
      (quadratic); the B lowest overall.
    "badge": a uniformly random modality, BADGE on gradient embeddings whose classes are the other
      modalities' items (see badge.py).
    Your own: a `Strategy`, a round function `fn(state, modality, *, batch_size, coreset_size,
      key)` or a "module:function" path (strategies.py); its picks are checked.

  Args:
    strategy: one of the above.
    pools: M >= 2 arrays [N_m, d] of L2-normalized embeddings of the still-unaligned items.
    annotated: M arrays [K_m, d] of the annotated items' embeddings (K_m may be 0).
    batch_size, coreset_size, key, logit_scale, modality: as in `select_from_state`.
    metric: "euclidean" or "cosine" (distances of steps 1-2; margins always use inner products).
    sizes: per modality, the real items at the top of pools[m] (the rest is padding, see
      `init_state`); default every row.
    storage: "float32" or "bfloat16", the dtype the pools are kept in (see `init_state`).
  Returns:
    Selection; Selection.index indexes pools[Selection.modality].
  Raises:
    ValueError (before any device work) on NaN/inf, mismatched dimensions, M < 2, an unknown
    strategy, metric or modality rule, batch_size > coreset_size, or a pool too small for the
    round; (after the strategy ran) on picks of the wrong shape or dtype, duplicates or
    out-of-range indices.
  """
  strategy = as_strategy(strategy, logit_scale=logit_scale)
  checks.check_metric(metric)
  checks.check_storage(storage)
  sizes = checks.check_sizes(sizes, checks.check_modalities(pools, annotated))
  checks.check_round(
      strategy, sizes, batch_size=batch_size, coreset_size=coreset_size, modality=modality
  )
  if not (strategy.coverage or (strategy.modality == "coverage" and modality is None)):
    # Only strategies that read the distance to the annotated set need it; skip computing it.
    annotated = [a[:0] for a in annotated]
  state = state_lib.build_state(pools, annotated, sizes, metric, storage)
  return _select(strategy, state, batch_size, coreset_size, key, modality)


def picks_for_budget(strategy, budget, sizes, modality=None):
  """How many picks to ask `select` for so that buying them in priority order still spends `budget`.

  The caller queries the picks best first and skips a pick that an earlier query of the same round
  revealed as its partner (it is known aligned, and costs nothing). Only a selection spanning
  several modalities can hold an item and its partner: "uncertainty" with modality=None. Each
  query reveals at most one other pick, so 2 * budget picks always leave `budget` to buy (capped
  at the sum(sizes) unaligned items). Every other strategy, and every strategy under a
  single-modality rule ("random" or an int), picks one modality, whose items cannot reveal each
  other: `budget`.

  Args:
    strategy: a built-in's name, a `Strategy`, a round function or a "module:function" path
      (`as_strategy`); a strategy whose own modality rule is "any" counts as "uncertainty".
    budget: int >= 1, queries to spend this round.
    sizes: per modality, the number of still-unaligned items the selection sees (M >= 2).
    modality: the rule passed to `select` (None, "random" or an int index).
  Returns:
    int, the batch_size to pass to `select` (and coreset_size >= it).
  """
  strategy = as_strategy(strategy)
  checks.check_count("budget", budget, minimum=1)
  if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
    raise ValueError(f"sizes={sizes!r} must list the unaligned items of each of M >= 2 modalities.")
  for m, n in enumerate(sizes):
    checks.check_count(f"sizes[{m}] (modality {m})", n)
  checks.check_modality(modality, len(sizes))
  if strategy.modality == "any" and modality is None:
    return int(min(2 * budget, sum(sizes)))
  return int(budget)
