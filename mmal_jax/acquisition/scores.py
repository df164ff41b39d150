"""Similarity-score reductions over huge candidate sets: margins (top-1 minus top-2) and softmax top-k.

Scores are inner products queries @ candidates.T (for L2-normalized embeddings, the cosine
similarity; the model's logit t*<a,b>+b is a monotone map of it and ranks margins the same). The
[Q, N] score matrix is never built: queries go in blocks of at most QUERY_BLOCK rows (lax.map), and
for each block a lax.scan runs over candidate chunks, carrying a small running summary per query.
The last chunk is padded and its padded scores are -inf. The long candidate axis is kept last.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mmal_jax.acquisition import checks
from mmal_jax.acquisition import distances

QUERY_BLOCK = 1024


def reduce_scores(queries, candidates, init, step, chunk_size=None, num_candidates=None):
  """Folds `step` over candidate chunks of the scores, per block of queries.

  Args:
    queries: f32[Q, d].
    candidates: [N, d] float32 or bfloat16 (converted chunk by chunk).
    init: rows -> carry pytree whose leaves have leading dimension `rows`.
    step: (carry, scores f32[rows, chunk] with -inf padding, ids int32[chunk]) -> carry.
    chunk_size: candidates per chunk (default: keeps a block under distances.BLOCK_ELEMENTS).
    num_candidates: int32[] (traced), only the first num_candidates candidates score (the rest
      is padding and scores -inf); default N.
  Returns:
    The final carry for all Q queries (leaves with leading dimension Q).
  """
  q, d = queries.shape
  n = candidates.shape[0]
  bq = min(q, QUERY_BLOCK)
  nq = -(-q // bq)
  bc = min(chunk_size or max(128, distances.BLOCK_ELEMENTS // bq), n)
  nc = -(-n // bc)
  chunks = jnp.pad(candidates, ((0, nc * bc - n), (0, 0))).reshape(nc, bc, d)
  ids = jnp.arange(nc * bc, dtype=jnp.int32).reshape(nc, bc)
  valid = n if num_candidates is None else num_candidates

  def one_block(qb):
    def body(carry, chunk):
      c, c_ids = chunk
      # Cast one chunk at a time: bfloat16 candidates are never copied whole to float32.
      s = jnp.dot(qb, c.astype(qb.dtype).T, precision=distances.HIGHEST)
      return step(carry, jnp.where(c_ids[None, :] < valid, s, -jnp.inf), c_ids), None

    carry, _ = lax.scan(body, init(bq), (chunks, ids))
    return carry

  blocks = jnp.pad(queries, ((0, nq * bq - q), (0, 0))).reshape(nq, bq, d)
  out = lax.map(one_block, blocks)
  return jax.tree.map(lambda a: a.reshape((nq * bq,) + a.shape[2:])[:q], out)


def _top2_init(rows):
  return (jnp.full((rows,), -jnp.inf, jnp.float32),) * 2


def _top2_step(carry, s, ids):
  del ids
  top1, top2 = carry
  # Two max passes instead of lax.top_k(s, 2): XLA may lower top_k + slicing to a full sort.
  j = jnp.argmax(s, axis=1)
  m1 = jnp.max(s, axis=1)
  m2 = jnp.max(jnp.where(jnp.arange(s.shape[1])[None, :] == j[:, None], -jnp.inf, s), axis=1)
  return jnp.maximum(top1, m1), jnp.maximum(jnp.minimum(top1, m1), jnp.maximum(top2, m2))


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def margins_f32(queries, candidates, chunk_size=None, num_candidates=None):
  """f32[Q] top-1 minus top-2 score against the first num_candidates (default all) candidates;
  unvalidated core of `margins`."""
  top1, top2 = reduce_scores(
      queries.astype(jnp.float32),
      candidates,
      _top2_init,
      _top2_step,
      chunk_size,
      num_candidates,
  )
  return top1 - top2


def margins(queries, candidates, *, chunk_size=None):
  """Margin of each query: top-1 minus top-2 of its scores queries @ candidates.T.

  Args:
    queries: [Q, d] embeddings (e.g. the coreset).
    candidates: [N, d] embeddings of the other modality (N may be millions; memory stays bounded).
    chunk_size: candidates per chunk (default: a [min(Q, 1024), chunk] block of <= 16 MiB).
  Returns:
    f32[Q]; 0 when the two best candidates tie (duplicates), +inf when N == 1 (no runner-up).
  """
  _, dim = checks.check_matrix("queries", queries)
  n, _ = checks.check_matrix("candidates", candidates, dim=dim, dim_from="queries")
  if n == 0:
    raise ValueError("candidates is empty; a margin needs at least one candidate.")
  return margins_f32(jnp.asarray(queries), jnp.asarray(candidates), chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("k", "chunk_size"))
def softmax_top_k(queries, candidates, scale, k, chunk_size=None, num_candidates=None):
  """The k largest probabilities of softmax(scale * queries @ candidates.T) over ALL candidates
  (the first num_candidates of them when given: the rest is padding).

  Returns:
    (f32[Q, k] probabilities in decreasing order, int32[Q, k] their candidate ids).
  """

  def init(rows):
    return (
        jnp.full((rows, k), -jnp.inf, jnp.float32),
        jnp.zeros((rows, k), jnp.int32),
        jnp.full((rows,), -jnp.inf, jnp.float32),
    )

  def step(carry, s, ids):
    vals, idx, lse = carry
    z = scale * s
    lse = jnp.logaddexp(lse, jax.nn.logsumexp(z, axis=1))
    # Running values come first, so earlier (lower) ids win ties.
    top, pos = lax.top_k(jnp.concatenate([vals, z], axis=1), k)
    all_ids = jnp.concatenate([idx, jnp.broadcast_to(ids, z.shape)], axis=1)
    return top, jnp.take_along_axis(all_ids, pos, axis=1), lse

  vals, idx, lse = reduce_scores(queries, candidates, init, step, chunk_size, num_candidates)
  return jnp.exp(vals - lse[:, None]), idx
