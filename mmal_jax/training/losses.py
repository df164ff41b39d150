"""Contrastive losses over a batch of B aligned (image, text) embedding pairs.

logits[i, j] = exp(t) * <zimg[i], ztxt[j]> (+ b): row i is image i, column j is text j, and the
positives are on the diagonal. `mask` (bool[B], optional) marks the real pairs of a padded batch:
padded rows and columns drop out of the loss entirely, so a batch padded to a fixed size gives the
same loss and gradients as the unpadded batch.
"""

from typing import Optional

import jax
import jax.numpy as jnp


def logits(zimg: jax.Array, ztxt: jax.Array, t: jax.Array, b: jax.Array = 0.0) -> jax.Array:
  """f32[B, D], f32[B, D], f32[], f32[] -> f32[B, B] = exp(t) * zimg @ ztxt.T + b."""
  return jnp.exp(t) * zimg @ ztxt.T + b


def sigmoid_loss(
    zimg: jax.Array, ztxt: jax.Array, t: jax.Array, b: jax.Array, mask: Optional[jax.Array] = None
) -> jax.Array:
  """SigLIP: mean over images of sum over texts of -log sigmoid(label * logit), label = +-1.

  f32[B, D], f32[B, D], f32[], f32[], bool[B] | None -> f32[].
  """
  n = zimg.shape[0]
  labels = 2.0 * jnp.eye(n) - 1.0
  nll = -jax.nn.log_sigmoid(labels * logits(zimg, ztxt, t, b))
  if mask is None:
    return jnp.sum(nll) / n
  m = mask.astype(nll.dtype)
  return jnp.sum(nll * m[:, None] * m[None, :]) / jnp.maximum(jnp.sum(m), 1.0)


def softmax_loss(
    zimg: jax.Array, ztxt: jax.Array, t: jax.Array, mask: Optional[jax.Array] = None
) -> jax.Array:
  """CLIP: mean of the image->text and text->image cross-entropies of the diagonal.

  f32[B, D], f32[B, D], f32[], bool[B] | None -> f32[].
  """
  n = zimg.shape[0]
  m = jnp.ones((n,), bool) if mask is None else mask
  lg = logits(zimg, ztxt, t)
  pair = m[:, None] & m[None, :]
  # Padded entries get -inf-like logits so they carry no probability in either direction.
  lg = jnp.where(pair, lg, -1e30)
  diag = jnp.diagonal(lg)
  i2t = jax.nn.logsumexp(lg, axis=1) - diag
  t2i = jax.nn.logsumexp(lg, axis=0) - diag
  w = m.astype(lg.dtype)
  return 0.5 * jnp.sum((i2t + t2i) * w) / jnp.maximum(jnp.sum(w), 1.0)
