"""One acquisition round: Algorithm 1 ("ours") and the baselines of Appendix B.1 / C.4."""
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
  return sum(scores.margins_f32(queries, p, num_candidates=n)
             for o, (p, n) in enumerate(zip(pools, sizes)) if o != skip)


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
  score = jnp.concatenate([
      jnp.where(padding.valid_rows(pools[m].shape[0], sizes[m]),
                _summed_margins(pools[m], pools, sizes, m), jnp.inf)
      for m in modalities])
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
  """The modality this round queries (int), or None for "uncertainty" over every modality."""
  if checks.is_fixed_modality(modality):
    return int(modality)
  if modality == "random" or strategy in ("random", "coreset", "badge"):
    return _random_modality(key_modality, len(state.sizes))
  if strategy == "ours":
    # Step 1: the least-covered modality. With nothing annotated every gap is +inf; like every
    # tie, it goes to the lowest modality index (np.argmax keeps the first maximum).
    return int(np.argmax(np.asarray(_largest_gaps(state.padded_min_sq))))
  return None


def _select(strategy, state, batch_size, coreset_size, key, logit_scale, modality):
  """`select_from_state` without the input checks (the callers ran them once)."""
  pools, valid = state.padded_pools, tuple(np.int32(n) for n in state.sizes)
  key_modality, key_items = jax.random.split(key)
  m = _query_modality(strategy, modality, state, key_modality)
  if strategy == "uncertainty":
    every = tuple(range(len(pools))) if m is None else (m,)
    modality, index = _uncertainty(pools, valid, batch_size, every)
    return Selection(np.asarray(modality), np.asarray(index))
  if strategy == "ours":
    index = _ours(pools, valid, state.padded_min_sq[m], m, coreset_size, batch_size)
  elif strategy == "random":
    index = _random_subset(key_items, valid[m], pools[m].shape[0], batch_size)
  elif strategy == "coreset":
    index, _ = kcenter.kcenter_sq(pools[m], state.padded_min_sq[m], batch_size)
  else:
    others = [(p, n) for o, (p, n) in enumerate(zip(pools, valid)) if o != m]
    index = badge_lib.badge(pools[m], valid[m], others, key_items, batch_size, logit_scale)
  return Selection(np.full(batch_size, m, np.int32), np.asarray(index, np.int32))


def select_from_state(strategy, state, *, batch_size, coreset_size, key, logit_scale=10.0,
                      modality=None):
  """One acquisition round on an `AcquisitionState` (see `select` for the strategies).

  Args:
    strategy: "ours", "random", "coreset", "uncertainty" or "badge".
    state: pools and min-distance caches (`init_state`, `update_state`).
    batch_size: B, items picked this round.
    coreset_size: B_C >= B, size of the coreset of "ours" (checked for every strategy).
    key: PRNG key; decides "random" (modality and items), "coreset" and "badge" (modality, and
      BADGE's sampling), and the modality of every strategy under modality="random". "ours" and
      "uncertainty" are otherwise deterministic.
    logit_scale: inverse temperature of BADGE's class probabilities softmax(scale * <x, y>)
      (SigLIP's initial exp(t) = 10).
    modality: the query-modality rule. None: each strategy's own (Algorithm 1's coverage gap for
      "ours", a uniformly random modality for "random"/"coreset"/"badge", every modality for
      "uncertainty"); "random": a uniformly random modality drawn from `key` for every strategy
      (for "ours" it replaces step 1 only; for "random"/"coreset"/"badge" it is the same draw as
      None); an int m: modality m only, for every strategy ("uncertainty" then ranks the items of
      m by their margins against the other modalities).
  Returns:
    Selection with B picks.
  """
  checks.check_round(strategy, STRATEGIES, state.sizes, batch_size=batch_size,
                     coreset_size=coreset_size, modality=modality)
  return _select(strategy, state, batch_size, coreset_size, key, logit_scale, modality)


def select(strategy, pools, annotated, *, batch_size, coreset_size, key, metric="euclidean",
           logit_scale=10.0, modality=None):
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

  Args:
    pools: M >= 2 arrays [N_m, d] of L2-normalized embeddings of the still-unaligned items.
    annotated: M arrays [K_m, d] of the annotated items' embeddings (K_m may be 0).
    batch_size, coreset_size, key, logit_scale, modality: as in `select_from_state`.
    metric: "euclidean" or "cosine" (distances of steps 1-2; margins always use inner products).
  Returns:
    Selection; Selection.index indexes pools[Selection.modality].
  Raises:
    ValueError (before any device work) on NaN/inf, mismatched dimensions, M < 2, an unknown
    strategy, metric or modality rule, batch_size > coreset_size, or a pool too small for the
    round.
  """
  checks.check_metric(metric)
  sizes = checks.check_modalities(pools, annotated)
  checks.check_round(strategy, STRATEGIES, sizes, batch_size=batch_size, coreset_size=coreset_size,
                     modality=modality)
  if strategy not in ("ours", "coreset"):
    # Only the coverage-based strategies read the distance to the annotated set; skip computing it.
    annotated = [a[:0] for a in annotated]
  state = state_lib.build_state(pools, annotated, sizes, metric)
  return _select(strategy, state, batch_size, coreset_size, key, logit_scale, modality)


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
    strategy: one of STRATEGIES.
    budget: int >= 1, queries to spend this round.
    sizes: per modality, the number of still-unaligned items the selection sees (M >= 2).
    modality: the rule passed to `select` (None, "random" or an int index).
  Returns:
    int, the batch_size to pass to `select` (and coreset_size >= it).
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"strategy={strategy!r} is unknown; use one of {STRATEGIES}.")
  checks.check_count("budget", budget, minimum=1)
  if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
    raise ValueError(f"sizes={sizes!r} must list the unaligned items of each of M >= 2 modalities.")
  for m, n in enumerate(sizes):
    checks.check_count(f"sizes[{m}] (modality {m})", n)
  checks.check_modality(modality, len(sizes))
  if strategy == "uncertainty" and modality is None:
    return int(min(2 * budget, sum(sizes)))
  return int(budget)
