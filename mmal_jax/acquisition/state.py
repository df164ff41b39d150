"""The incremental acquisition state: pools plus a min-distance-to-annotated cache per modality.

Step 1 of Algorithm 1 needs, for every unaligned item, the distance to its nearest annotated item
of the same modality, and step 2 starts k-center from exactly that cache. Recomputing it costs
O(N |S| d) per round; since S only grows and the pools only shrink, the cache can instead be carried
across rounds and tightened with the few newly annotated items: O(N B d) per round. The cache is
valid only while the embeddings are fixed (a frozen encoder, e.g. LiT's image tower, or a stream of
buffers embedded once); after retraining an encoder, build a fresh state with `init_state`.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mmal_jax.acquisition import checks
from mmal_jax.acquisition import distances


@dataclasses.dataclass(frozen=True)
class AcquisitionState:
  """Everything an acquisition round reads.

  Attributes:
    pools: per modality m, f32[N_m, d] embeddings of the still-unaligned items, in the caller's
      order (L2-normalized again when metric == "cosine").
    min_sq: per modality m, f32[N_m] squared Euclidean distance (in the normalized space for
      cosine, where it is twice the cosine distance) from each pool item to its nearest annotated
      item of modality m; +inf while modality m has no annotated items.
    metric: "euclidean" or "cosine".
  """
  pools: tuple[jax.Array, ...]
  min_sq: tuple[jax.Array, ...]
  metric: str

  @property
  def sizes(self):
    return tuple(int(p.shape[0]) for p in self.pools)

  def min_distances(self):
    """Per modality, f32[N_m] distance of each pool item to the annotated set, in metric units."""
    return tuple(distances.to_distance(c, self.metric) for c in self.min_sq)


def init_state(pools, annotated, *, metric="euclidean"):
  """Builds the state from scratch: O(sum_m N_m K_m d).

  Args:
    pools: M >= 2 arrays [N_m, d] of the unaligned items' embeddings (may be sharded along N).
    annotated: M arrays [K_m, d] of the annotated items' embeddings (K_m may be 0).
    metric: "euclidean" or "cosine".
  """
  checks.check_metric(metric)
  checks.check_modalities(pools, annotated)
  pools = tuple(distances.prepare(p, metric) for p in pools)
  min_sq = tuple(distances.min_sq_distances(p, distances.prepare(a, metric))
                 for p, a in zip(pools, annotated))
  return AcquisitionState(pools, min_sq, metric)


def _check_removed(m, removed, size):
  r = np.asarray(removed)
  if r.ndim != 1 or not (r.size == 0 or np.issubdtype(r.dtype, np.integer)):
    raise ValueError(f"removed[{m}] (modality {m}) must be a 1-D array of int positions, got "
                     f"shape {r.shape} dtype {r.dtype}.")
  if r.size and (r.min() < 0 or r.max() >= size):
    raise ValueError(f"removed[{m}] (modality {m}) holds positions outside [0, {size}); pass "
                     "positions into the state's current pool.")
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
    (up to float32 rounding in the cache). The shrunken pools are gathered copies: a pool that
    was sharded along N is not re-sharded (device_put it again if that matters).
  """
  m_count = len(state.pools)
  if len(removed) != m_count or len(added) != m_count:
    raise ValueError(f"removed and added need one entry per modality ({m_count}); got "
                     f"{len(removed)} and {len(added)}.")
  dim = state.pools[0].shape[1]
  keeps = []
  for m, (r, a) in enumerate(zip(removed, added)):
    r = _check_removed(m, r, state.sizes[m])
    checks.check_matrix(f"added[{m}] (modality {m})", a, dim=dim, dim_from="the state's pools")
    keeps.append(np.setdiff1d(np.arange(state.sizes[m]), r))
  pools, min_sq = [], []
  for pool, cache, keep, a in zip(state.pools, state.min_sq, keeps, added):
    pool, cache = pool[keep], cache[keep]
    if a.shape[0]:
      new = distances.min_sq_distances(pool, distances.prepare(a, state.metric))
      cache = jnp.minimum(cache, new)
    pools.append(pool)
    min_sq.append(cache)
  return AcquisitionState(tuple(pools), tuple(min_sq), state.metric)
