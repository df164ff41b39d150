"""Distances between embeddings (Euclidean, or cosine as in Appendix C.3) and nearest-center search.

Internally every metric works in one unit, the squared Euclidean distance
  sq(x, c) = |x|^2 + |c|^2 - 2 <x, c>   (clamped at 0),
computed from cached squared norms so that a pass over N points costs one matrix-vector (or thin
matrix-matrix) product. For metric="cosine" the rows are L2-normalized first, and then
1 - cos(x, c) = sq / 2, so both metrics share all the code and only `to_distance` differs.

Precision: float32 throughout (dots use Precision.HIGHEST, which matters on TPU/GPU where the default
is bf16). The |x|^2 + |c|^2 - 2<x,c> form cancels for near-duplicates: for unit-norm rows the absolute
error of sq is ~1e-6, i.e. ~1e-3 on a Euclidean distance near 0. Rankings between clearly different
distances are exact; near-ties below that resolution may order differently from a float64 reference.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mmal_jax.acquisition import checks
from mmal_jax.acquisition import padding

# Largest [rows, block] score/distance block materialized at once (float32 elements, 16 MiB).
BLOCK_ELEMENTS = 1 << 22
# ...except that a nearest-center block keeps at least this many centers: thinner blocks re-read
# the whole pool per block and starve the matmul (at N = 1e6, d = 512 the [N, 64] block is 1/8 of
# the pool's own memory).
MIN_CENTER_BLOCK = 64
HIGHEST = lax.Precision.HIGHEST


def prepare(x, metric):
  """f32[n, d] copy of `x`, L2-normalized for metric="cosine" (zero rows stay zero)."""
  x = jnp.asarray(x, jnp.float32)
  if metric == "cosine":
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-30)
  return x


def sq_norms(x):
  """f32[N] squared row norms, accumulated in float32 whatever x's storage dtype."""
  if x.dtype == jnp.float32:
    return jnp.einsum("nd,nd->n", x, x, precision=HIGHEST)
  return jnp.sum(jnp.square(x.astype(jnp.float32)), axis=1)  # one fused pass, no f32 copy


def matvec(x, v):
  """f32[N] = x @ v for x [N, d] in its storage dtype and v f32[d].

  float32 goes to the BLAS matrix-vector product. Narrower storage is multiplied and summed in one
  fused loop that converts each element as it is read: XLA:CPU would otherwise convert the whole
  [N, d] array to float32 before a dot (measured: 10x slower than the float32 dot), which reads
  more bytes than float32 storage itself. Accelerators multiply bf16 natively, accumulating in
  float32.
  """
  if x.dtype == jnp.float32:
    return jnp.dot(x, v, precision=HIGHEST)
  if jax.default_backend() == "cpu":
    return jnp.sum(x.astype(jnp.float32) * v, axis=1)
  return jnp.dot(x, v.astype(x.dtype), preferred_element_type=jnp.float32)


def to_distance(sq, metric):
  """Maps the internal squared distance to the metric's distance (+inf stays +inf)."""
  return jnp.sqrt(sq) if metric == "euclidean" else sq / 2


@functools.partial(jax.jit, static_argnames=("block_size",))
def min_sq_distances(points, centers, num_centers=None, block_size=None):
  """f32[N]: squared distance of each point to its nearest center, +inf if there are none.

  Args:
    points: [N, d] float32 or bfloat16 (upcast once here: this product is compute-bound).
    centers: f32[M, d].
    num_centers: int32[] (traced), only the first num_centers centers count (the rest is
      padding); default M.
    block_size: centers per block (default: as many as keep an [N, block] block under
      BLOCK_ELEMENTS, but at least MIN_CENTER_BLOCK). Only one [N, block] block exists at a time,
      whatever M is; the N axis stays whole, so points sharded along N stay sharded.
  """
  n, d = points.shape
  m = centers.shape[0]
  points = points.astype(jnp.float32)
  if m == 0:
    return jnp.full((n,), jnp.inf, jnp.float32)
  bm = block_size or max(MIN_CENTER_BLOCK, BLOCK_ELEMENTS // max(n, 1))
  bm = min(bm, m)
  nb = -(-m // bm)
  pad = nb * bm - m
  blocks = jnp.pad(centers, ((0, pad), (0, 0))).reshape(nb, bm, d)
  center_sq = jnp.where(
      padding.valid_rows(m, m if num_centers is None else num_centers), sq_norms(centers), jnp.inf
  )
  block_sq = jnp.pad(center_sq, (0, pad), constant_values=jnp.inf).reshape(nb, bm)
  point_sq = sq_norms(points)

  def body(best, block):
    c, c_sq = block  # padded centers have c_sq = +inf, so they are never nearest
    sq = point_sq[:, None] + c_sq[None, :] - 2 * jnp.dot(points, c.T, precision=HIGHEST)
    return jnp.minimum(best, sq.min(axis=1)), None

  best, _ = lax.scan(body, jnp.full((n,), jnp.inf, jnp.float32), (blocks, block_sq))
  return jnp.maximum(best, 0.0)


def min_distances(points, centers, *, metric="euclidean", block_size=None):
  """Distance of each point to its nearest center.

  Args:
    points: [N, d] embeddings.
    centers: [M, d] embeddings (M may be 0).
    metric: "euclidean" or "cosine" (1 - cosine similarity).
    block_size: centers handled per block; the default bounds the [N, block] block to
      max(16 MiB, N * 64 floats), independent of M.
  Returns:
    f32[N]; +inf everywhere when M == 0.
  """
  checks.check_metric(metric)
  _, dim = checks.check_matrix("points", points)
  checks.check_matrix("centers", centers, dim=dim, dim_from="points")
  sq = min_sq_distances(prepare(points, metric), prepare(centers, metric), block_size=block_size)
  return to_distance(sq, metric)
