"""The incremental acquisition state: pools plus a min-distance-to-annotated cache per modality.

Step 1 of Algorithm 1 needs, for every unaligned item, the distance to its nearest annotated item
of the same modality, and step 2 starts k-center from exactly that cache. Recomputing it costs
O(N |S| d) per round; since S only grows and the pools only shrink, the cache can instead be carried
across rounds and tightened with the few newly annotated items: O(N B d) per round. The cache is
valid only while the embeddings are fixed (a frozen encoder, e.g. LiT's image tower, or a stream of
buffers embedded once); after retraining an encoder, build a fresh state with `init_state`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmal_jax.acquisition import checks
from mmal_jax.acquisition import distances
from mmal_jax.acquisition import padding


@dataclasses.dataclass(frozen=True)
class AcquisitionState:
  """Everything an acquisition round reads, stored padded to bucketed row counts (padding.py), so
  that the rounds of a shrinking pool reuse compiled programs.

  Attributes:
    padded_pools: per modality m, [bucket(N_m), d] in the storage dtype (float32, or bfloat16
      with storage="bfloat16"): the N_m still-unaligned items' embeddings in the caller's order
      (L2-normalized again when metric == "cosine"), then zero rows.
    padded_min_sq: per modality m, f32[bucket(N_m)]: squared Euclidean distance (in the
      normalized space for cosine, where it is twice the cosine distance) from each pool item to
      its nearest annotated item of modality m, +inf while modality m has none; -inf on padding.
    sizes: per modality, N_m.
    metric: "euclidean" or "cosine".
  """

  padded_pools: tuple[jax.Array, ...]
  padded_min_sq: tuple[jax.Array, ...]
  sizes: tuple[int, ...]
  metric: str

  @property
  def pools(self):
    """Per modality, f32[N_m, d] (the padding cut off)."""
    return tuple(p[:n] for p, n in zip(self.padded_pools, self.sizes))

  @property
  def min_sq(self):
    """Per modality, f32[N_m] squared distance to the annotated set (+inf while there is none)."""
    return tuple(c[:n] for c, n in zip(self.padded_min_sq, self.sizes))

  def min_distances(self):
    """Per modality, f32[N_m] distance of each pool item to the annotated set, in metric units."""
    return tuple(distances.to_distance(c, self.metric) for c in self.min_sq)


@jax.jit
def _masked_min_sq(padded_pool, padded_centers, num_centers, size):
  """f32[P]: min_sq of the `size` real rows of a padded pool [P, d] against the first
  `num_centers` rows of `padded_centers`, -inf on the padding (one program: the mask is fused into
  step 1's last pass)."""
  return jnp.where(
      padding.valid_rows(padded_pool.shape[0], size),
      distances.min_sq_distances(padded_pool, padded_centers, num_centers),
      -jnp.inf,
  )


def _padded_min_sq(padded_pool, size, centers, metric):
  """f32[bucket(size)]: min_sq of a padded pool against `centers` [K, d], -inf on the padding."""
  k = centers.shape[0]
  centers = distances.prepare(padding.padded_f32(centers, padding.bucket(k)), metric)
  return _masked_min_sq(padded_pool, centers, np.int32(k), np.int32(size))


@functools.partial(jax.jit, static_argnames=("metric", "storage"))
def _prepared(x, metric, storage):
  return distances.prepare(x, metric).astype(storage)


def _padded_pool(pool, size, metric, storage):
  """[max(bucket(size), R), d] device array in the storage dtype: `pool` [R, d] prepared for
  `metric`, then zero rows: one copy at most (padding.padded_f32), and for the float32 Euclidean
  case no further pass."""
  pool = padding.padded_f32(pool, max(padding.bucket(size), pool.shape[0]))
  if metric == "euclidean" and storage == "float32":
    return pool
  return _prepared(pool, metric, storage)


def init_state(pools, annotated, *, metric="euclidean", sizes=None, storage="float32"):
  """Builds the state from scratch: O(sum_m N_m K_m d).

  Args:
    pools: M >= 2 arrays [R_m, d] of the unaligned items' embeddings (may be sharded along R_m,
      over one process's devices or, as `mesh.global_rows` builds them, over every process's).
    annotated: M arrays [K_m, d] of the annotated items' embeddings (K_m may be 0).
    metric: "euclidean" or "cosine".
    sizes: per modality N_m <= R_m, the real items at the top of pools[m] (the rest is padding
      and never picked, e.g. the rows that round a global array up to a multiple of the device
      count); default R_m.
    storage: "float32" or "bfloat16", the dtype the pools are kept in. bfloat16 halves the bytes
      that each k-center pass reads (the round's main cost); distances and scores are still
      computed in float32, from values rounded to 8 significant bits (relative error <= 2^-9), so
      near-ties may be ordered differently than with float32 storage.
  """
  checks.check_metric(metric)
  checks.check_storage(storage)
  rows = checks.check_modalities(pools, annotated)
  return build_state(pools, annotated, checks.check_sizes(sizes, rows), metric, storage)


def build_state(pools, annotated, sizes, metric, storage="float32"):
  """`init_state` without the input checks, for callers that ran them already (sizes: N_m)."""
  pools = tuple(_padded_pool(p, n, metric, storage) for p, n in zip(pools, sizes))
  min_sq = tuple(_padded_min_sq(p, n, a, metric) for p, n, a in zip(pools, sizes, annotated))
  return AcquisitionState(pools, min_sq, tuple(int(n) for n in sizes), metric)


@jax.jit
def _gather(padded_pool, padded_min_sq, index, size):
  """Rows `index` (int32[bucket(size)], the kept rows first) of pool and cache, re-padded."""
  valid = padding.valid_rows(index.shape[0], size)
  return (
      jnp.where(valid[:, None], padded_pool[index], 0.0),
      jnp.where(valid, padded_min_sq[index], -jnp.inf),
  )


def _check_removed(m, removed, size):
  r = np.asarray(removed)
  if r.ndim != 1 or not (r.size == 0 or np.issubdtype(r.dtype, np.integer)):
    raise ValueError(
        f"removed[{m}] (modality {m}) must be a 1-D array of int positions, got "
        f"shape {r.shape} dtype {r.dtype}."
    )
  if r.size and (r.min() < 0 or r.max() >= size):
    raise ValueError(
        f"removed[{m}] (modality {m}) holds positions outside [0, {size}); pass "
        "positions into the state's current pool."
    )
  if np.unique(r).size != r.size:
    raise ValueError(f"removed[{m}] (modality {m}) repeats a position; each item leaves once.")
  return r


def update_state(state, removed, added):
  """Removes bought items from the pools and tightens the caches with newly annotated items.

  Args:
    state: the AcquisitionState of the round just acquired.
    removed: per modality m, int positions (into state.pools[m]) of the items that left the pool
      this round: the picked items and their revealed partners, answered or not.
    added: per modality m, [k_m, d] embeddings of the items that joined the annotated set this
      round (a picked item without a partner leaves its pool but adds no pair); k_m may be 0.
  Returns:
    The new state: each pool without the removed rows, the remaining rows in their previous order
    (as np.delete), so the caller's item-id arrays follow with np.delete(ids, removed[m]).
    Selecting from it gives the same result as `init_state` on the new pools and annotated sets
    (up to float32 rounding in the cache). The shrunken pools are gathered copies (padded to
    their new bucket): a pool that was sharded along N is not re-sharded.
  """
  m_count = len(state.sizes)
  if len(removed) != m_count or len(added) != m_count:
    raise ValueError(
        f"removed and added need one entry per modality ({m_count}); got "
        f"{len(removed)} and {len(added)}."
    )
  dim = state.padded_pools[0].shape[1]
  keeps = []
  for m, (r, a) in enumerate(zip(removed, added)):
    r = _check_removed(m, r, state.sizes[m])
    checks.check_matrix(f"added[{m}] (modality {m})", a, dim=dim, dim_from="the state's pools")
    keeps.append(np.setdiff1d(np.arange(state.sizes[m]), r))
  pools, min_sq = [], []
  for pool, cache, keep, a in zip(state.padded_pools, state.padded_min_sq, keeps, added):
    index = np.zeros(padding.bucket(len(keep)), np.int32)
    index[: len(keep)] = keep
    pool, cache = _gather(pool, cache, index, np.int32(len(keep)))
    if a.shape[0]:
      cache = jnp.minimum(cache, _padded_min_sq(pool, len(keep), a, state.metric))
    pools.append(pool)
    min_sq.append(cache)
  return AcquisitionState(tuple(pools), tuple(min_sq), tuple(len(k) for k in keeps), state.metric)
