"""Greedy k-center (farthest-first traversal; Sener & Savarese 2018, Algorithm 2 of the paper)."""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mmal_jax.acquisition import checks
from mmal_jax.acquisition import distances


@functools.partial(jax.jit, static_argnames=("num_select",))
def kcenter_sq(points, cache, num_select):
  """Greedy k-center on the internal squared distance.

  Each step is one pass over the pool: the new center's squared distances from the cached squared
  norms and one matrix-vector product, folded into the min-distance cache. The pass is memory-bound
  (reads N*d floats), so a round of k-center costs num_select reads of the pool.

  Args:
    points: [N, d] float32 or bfloat16 storage (already normalized for the cosine metric); every
      distance is computed in float32 from the stored values.
    cache: f32[N] squared distance of each point to its nearest existing center (+inf: none).
    num_select: number of centers to add (static), <= N.
  Returns:
    (int32[num_select] picks in pick order, f32[N] final cache with 0 at the picks).
    Ties go to the lowest index: with an all-+inf cache (no centers) the first pick is index 0.
  """
  point_sq = distances.sq_norms(points)

  def body(i, carry):
    picks, cache = carry
    j = jnp.argmax(cache).astype(jnp.int32)  # first maximum: lowest index wins ties
    center = points[j].astype(jnp.float32)
    sq = point_sq + point_sq[j] - 2 * distances.matvec(points, center)
    # Picked points are marked -1 (not 0) so that, once every point is covered, duplicates of a
    # pick (sq ~ 0) can still be chosen but a pick never is twice.
    cache = jnp.minimum(cache, jnp.maximum(sq, 0.0)).at[j].set(-1.0)
    return picks.at[i].set(j), cache

  picks = jnp.zeros((num_select,), jnp.int32)
  picks, cache = lax.fori_loop(0, num_select, body, (picks, cache))
  return picks, jnp.maximum(cache, 0.0)


def kcenter_greedy(points, num_select, centers=None, *, metric="euclidean"):
  """Greedy farthest-first traversal from optional initial centers.

  Args:
    points: [N, d] embeddings to pick from.
    num_select: how many points to pick, 0 <= num_select <= N.
    centers: [M, d] initial centers (e.g. the annotated items), or None / M == 0 for none.
    metric: "euclidean" or "cosine".
  Returns:
    (int32[num_select] indices into `points` in pick order, f32[N] each point's distance to its
    nearest center after the picks, in the metric's units). Ties go to the lowest index; with no
    initial centers every point is infinitely far, so the first pick is index 0 (pools are in the
    learner's random order, so this is the usual random first center, made reproducible).
  """
  checks.check_metric(metric)
  n, dim = checks.check_matrix("points", points)
  checks.check_count("num_select", num_select)
  if num_select > n:
    raise ValueError(f"num_select={num_select} > {n} points; lower num_select.")
  x = distances.prepare(points, metric)
  if centers is None:
    cache = jnp.full((n,), jnp.inf, jnp.float32)
  else:
    checks.check_matrix("centers", centers, dim=dim, dim_from="points")
    cache = distances.min_sq_distances(x, distances.prepare(centers, metric))
  picks, cache = kcenter_sq(x, cache, num_select)
  return picks, distances.to_distance(cache, metric)
