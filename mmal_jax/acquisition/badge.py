"""BADGE (Ash et al., 2020) adapted to unaligned multimodal data (Appendix C.4).

Each item x of the chosen modality is treated as a classification example whose classes are the
unaligned items of every other modality o: p_o = softmax(logit_scale * <x, y>), y in D^o, and
yhat_o its argmax. The gradient embedding of the cross-entropy w.r.t. the last layer at the
predicted label is g = concat_o (p_o - e_{yhat_o}) (x) x, of dimension d * sum_o |D^o|: quadratic in
the pool, the mismatch the paper blames for BADGE's weak results. It is never materialized:
<g_i, g_j> = <a_i, a_j> <x_i, x_j> with a = concat_o (p_o - e_{yhat_o}), and a is kept sparse by
truncating each p_o to its TOP_K largest probabilities (exact when the rest of the softmax mass is
negligible, as for a trained contrastive model). BADGE then runs k-means++ seeding on g: the first
center has the largest |g|, each next one is drawn with probability proportional to the squared
distance to the nearest center.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mmal_jax.acquisition import distances
from mmal_jax.acquisition import padding
from mmal_jax.acquisition import scores

TOP_K = 8


def gradient_factors(x, others, logit_scale):
  """Sparse a = concat_o (p_o - e_{yhat_o}): (int32[N, K] class ids, f32[N, K] values).

  others: per other modality, (f32[P_o, d] pool, its real row count: int or int32[]); the rows
  past it are padding and are no class. Class ids of modality `others[i]` are offset by the
  padded sizes of the ones before it, so that ids of different modalities never collide.
  """
  ids, vals, offset = [], [], 0
  for y, n in others:
    p, idx = scores.softmax_top_k(x, y, logit_scale, k=min(TOP_K, int(n)), num_candidates=n)
    ids.append(idx + offset)
    vals.append(p.at[:, 0].add(-1.0))  # column 0 holds yhat, the top-1 class
    offset += y.shape[0]
  return jnp.concatenate(ids, axis=1), jnp.concatenate(vals, axis=1)


def gradient_sq_norms(x, vals):
  """f32[N] |g_i|^2 = |a_i|^2 |x_i|^2."""
  return jnp.sum(vals * vals, axis=1) * distances.sq_norms(x)


def gradient_sq_distances(x, ids, vals, g_sq, j):
  """f32[N] |g_i - g_j|^2 for all i, from the sparse factors (O(N K^2 + N d))."""
  same = ids[:, :, None] == ids[j][None, None, :]
  a_dot = jnp.einsum("nab,na,b->n", same.astype(vals.dtype), vals, vals[j])
  x_dot = jnp.dot(x, x[j], precision=distances.HIGHEST)
  return jnp.maximum(g_sq + g_sq[j] - 2 * a_dot * x_dot, 0.0)


@functools.partial(jax.jit, static_argnames=("num_select",))
def kmeanspp(x, ids, vals, key, num_select, num_valid=None):
  """k-means++ seeding on the implicit gradient embeddings; int32[num_select] in pick order.

  num_valid: int32[] (traced), only the first num_valid rows of x may be picked (the rest is
  padding); default all.
  """
  valid = padding.valid_rows(x.shape[0], x.shape[0] if num_valid is None else num_valid)
  g_sq = gradient_sq_norms(x, vals)
  sq_to = functools.partial(gradient_sq_distances, x, ids, vals, g_sq)

  first = jnp.argmax(jnp.where(valid, g_sq, -1.0)).astype(jnp.int32)
  # Picked points (and padding) carry -1 so they are never drawn, even when all distances are 0.
  cache = jnp.where(valid, sq_to(first), -1.0).at[first].set(-1.0)

  def body(i, carry):
    picks, cache = carry
    positive = jnp.where(cache > 0, cache, 0.0)
    # Degenerate case (every unpicked point at distance 0): draw uniformly among unpicked points.
    logits = jnp.where(
        jnp.any(positive > 0), jnp.log(positive), jnp.where(cache < 0, -jnp.inf, 0.0)
    )
    j = jax.random.categorical(jax.random.fold_in(key, i), logits).astype(jnp.int32)
    cache = jnp.minimum(cache, sq_to(j)).at[j].set(-1.0)
    return picks.at[i].set(j), cache

  picks = jnp.zeros((num_select,), jnp.int32).at[0].set(first)
  picks, _ = lax.fori_loop(1, num_select, body, (picks, cache))
  return picks


def badge(x, num_valid, others, key, num_select, logit_scale):
  """Picks `num_select` of the first num_valid rows of x f32[P, d] against the other modalities'
  (pool f32[P_o, d], real row count) pairs."""
  ids, vals = gradient_factors(x, others, logit_scale)
  return kmeanspp(x, ids, vals, key, num_select, num_valid)
