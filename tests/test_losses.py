"""Contrastive losses vs NumPy float64 references, values and gradients (t, b, embeddings)."""

import jax
import numpy as np
import pytest

from mmal_jax.training import losses


def _normalized(rng, n, d):
  z = rng.normal(size=(n, d))
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def ref_sigmoid(zimg, ztxt, t, b):
  n = len(zimg)
  lg = np.exp(t) * zimg @ ztxt.T + b
  labels = 2 * np.eye(n) - 1
  # -log sigmoid(x) = log(1 + exp(-x)), written stably with logaddexp.
  return np.sum(np.logaddexp(0.0, -labels * lg)) / n


def ref_softmax(zimg, ztxt, t):
  lg = np.exp(t) * zimg @ ztxt.T

  def xent(m):
    m = m - m.max(axis=1, keepdims=True)
    logp = m - np.log(np.exp(m).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(logp))

  return 0.5 * (xent(lg) + xent(lg.T))


def _fd(f, x, eps=1e-6):
  """Central finite differences of scalar f at float64 array x."""
  x = np.array(x, np.float64)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    g[i] = (f(x + e) - f(x - e)) / (2 * eps)
  return g


@pytest.fixture(scope="module")
def emb():
  rng = np.random.default_rng(0)
  return _normalized(rng, 6, 5), _normalized(rng, 6, 5), np.log(7.0), -2.5


def test_sigmoid_loss_value_and_grads(emb):
  zi, zt, t, b = emb
  f32 = lambda x: np.asarray(x, np.float32)  # pylint: disable=unnecessary-lambda-assignment
  value, grads = jax.value_and_grad(losses.sigmoid_loss, argnums=(0, 1, 2, 3))(
      f32(zi), f32(zt), f32(t), f32(b)
  )
  np.testing.assert_allclose(value, ref_sigmoid(zi, zt, t, b), rtol=1e-5)
  np.testing.assert_allclose(grads[2], _fd(lambda x: ref_sigmoid(zi, zt, x, b), t), rtol=1e-4)
  np.testing.assert_allclose(grads[3], _fd(lambda x: ref_sigmoid(zi, zt, t, x), b), rtol=1e-4)
  np.testing.assert_allclose(grads[0], _fd(lambda x: ref_sigmoid(x, zt, t, b), zi), atol=1e-4)
  np.testing.assert_allclose(grads[1], _fd(lambda x: ref_sigmoid(zi, x, t, b), zt), atol=1e-4)


def test_softmax_loss_value_and_grads(emb):
  zi, zt, t, _ = emb
  f32 = lambda x: np.asarray(x, np.float32)  # pylint: disable=unnecessary-lambda-assignment
  value, grads = jax.value_and_grad(losses.softmax_loss, argnums=(0, 1, 2))(
      f32(zi), f32(zt), f32(t)
  )
  np.testing.assert_allclose(value, ref_softmax(zi, zt, t), rtol=1e-5)
  np.testing.assert_allclose(grads[2], _fd(lambda x: ref_softmax(zi, zt, x), t), rtol=1e-4)
  np.testing.assert_allclose(grads[0], _fd(lambda x: ref_softmax(x, zt, t), zi), atol=1e-4)
  np.testing.assert_allclose(grads[1], _fd(lambda x: ref_softmax(zi, x, t), zt), atol=1e-4)


@pytest.mark.parametrize("name", ["sigmoid", "softmax"])
def test_mask_equals_unpadded_batch(emb, name):
  """Padded rows (garbage embeddings, masked out) change neither the loss nor its gradients."""
  zi, zt, t, b = emb
  keep = np.array([1, 0, 1, 1, 0, 1], bool)
  args = (t, b) if name == "sigmoid" else (t,)
  fn = getattr(losses, f"{name}_loss")
  ref = ref_sigmoid if name == "sigmoid" else ref_softmax

  def masked(zi_, zt_, t_):
    return fn(zi_, zt_, t_, *args[1:], mask=keep)

  value, (gi, gt, gtemp) = jax.value_and_grad(masked, argnums=(0, 1, 2))(
      np.float32(zi), np.float32(zt), np.float32(t)
  )
  np.testing.assert_allclose(value, ref(zi[keep], zt[keep], *args), rtol=1e-5)
  np.testing.assert_allclose(
      gtemp, _fd(lambda x: ref(zi[keep], zt[keep], x, *args[1:]), t), rtol=1e-4
  )
  np.testing.assert_allclose(gi[keep], _fd(lambda x: ref(x, zt[keep], *args), zi[keep]), atol=1e-4)
  np.testing.assert_array_equal(gi[~keep], 0.0)
  np.testing.assert_array_equal(gt[~keep], 0.0)
