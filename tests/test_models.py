"""Two-tower model: big_vision parameter layout, and outputs vs a NumPy float64 forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmal_jax import models
from mmal_jax.models import npz
from mmal_jax.models import vit
from small_models import small_config


def _shapes(cfg):
  """The parameter tree's shapes, traced without compiling anything."""
  model = models.get_model(cfg)
  return model, jax.eval_shape(lambda k: models.init_params(model, cfg, k), jax.random.key(0))


def test_big_vision_layout():
  shapes = {k: tuple(v.shape) for k, v in npz.flatten(_shapes(small_config())[1]).items()}
  # Keys and shapes as in released big_vision SigLIP checkpoints (width 32, 2 heads of 16, mlp 128).
  expected = {
      "img/embedding/kernel": (8, 8, 3, 32),
      "img/pos_embedding": (1, 4, 32),
      "img/Transformer/encoderblock_0/LayerNorm_0/scale": (32,),
      "img/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel": (32, 2, 16),
      "img/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/out/kernel": (2, 16, 32),
      "img/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel": (32, 128),
      "img/Transformer/encoder_norm/bias": (32,),
      "img/MAPHead_0/probe": (1, 1, 32),
      "img/MAPHead_0/MultiHeadDotProductAttention_0/key/kernel": (32, 2, 16),
      "img/MAPHead_0/MlpBlock_0/Dense_1/kernel": (128, 32),
      "img/head/kernel": (32, 16),
      "txt/Embed_0/embedding": (50, 32),
      "txt/pos_embedding": (1, 6, 32),
      "txt/Encoder_0/encoderblock_0/MlpBlock_0/Dense_1/bias": (32,),
      "txt/Encoder_0/encoder_norm/scale": (32,),
      "txt/head/kernel": (32, 16),
      "t": (1,),
      "b": (1,),
  }
  for k, shape in expected.items():
    assert shapes.get(k) == shape, (k, shapes.get(k))
  assert not any(k.startswith("txt/MAPHead") or "encoderblock_1" in k for k in shapes)


def test_clip_layout_has_no_bias():
  cfg = small_config(bias_init=None, loss="softmax")
  shapes = _shapes(cfg)[1]
  assert "b" not in shapes and set(shapes) == {"img", "txt", "t"}


def test_variants_match_big_vision_table():
  assert vit.decode_variant("B/16") == dict(
      width=768, depth=12, mlp_dim=3072, num_heads=12, patch_size=(16, 16)
  )
  assert vit.decode_variant("So400m/14")["mlp_dim"] == 4304
  assert vit.decode_variant("L")["depth"] == 24 and "patch_size" not in vit.decode_variant("L")
  with pytest.raises(ValueError, match="unknown model variant"):
    vit.decode_variant("Q/16")


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(bias_init=None), "bias_init"),
        (dict(image=dict(variant="mu/8", colour=1)), "unknown keys"),
        (dict(text=dict(variant="mu", max_len=6)), "vocab_size"),
        (dict(text=dict(variant="mu/8", vocab_size=50, max_len=6)), "patch size"),
    ],
)
def test_bad_configs_raise(change, match):
  with pytest.raises(ValueError, match=match):
    models.get_model(small_config(**change))


# ---- NumPy float64 reference forward pass, written from the ViT / big_vision definitions. ----
def _ln(x, p, eps=1e-6):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _gelu(x):  # flax's default (tanh approximation)
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _dense(x, p):
  return x @ p["kernel"] + p["bias"]


def _mha(xq, xkv, p):
  q = np.einsum("bld,dhk->blhk", xq, p["query"]["kernel"]) + p["query"]["bias"]
  k = np.einsum("bld,dhk->blhk", xkv, p["key"]["kernel"]) + p["key"]["bias"]
  v = np.einsum("bld,dhk->blhk", xkv, p["value"]["kernel"]) + p["value"]["bias"]
  a = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
  a = np.exp(a - a.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  o = np.einsum("bhqs,bshk->bqhk", a, v)
  return np.einsum("bqhk,hkd->bqd", o, p["out"]["kernel"]) + p["out"]["bias"]


def _mlp(x, p):
  return _dense(_gelu(_dense(x, p["Dense_0"])), p["Dense_1"])


def _encoder(x, p):
  i = 0
  while f"encoderblock_{i}" in p:
    blk = p[f"encoderblock_{i}"]
    y = _ln(x, blk["LayerNorm_0"])
    x = x + _mha(y, y, blk["MultiHeadDotProductAttention_0"])
    x = x + _mlp(_ln(x, blk["LayerNorm_1"]), blk["MlpBlock_0"])
    i += 1
  return _ln(x, p["encoder_norm"])


def _normalize(z):
  return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-8)


def ref_image(p, image):
  kh, kw, _, width = p["embedding"]["kernel"].shape
  b, s, _, _ = image.shape
  patches = image.reshape(b, s // kh, kh, s // kw, kw, 3).transpose(0, 1, 3, 2, 4, 5)
  x = np.einsum("bhwijc,ijcd->bhwd", patches, p["embedding"]["kernel"]) + p["embedding"]["bias"]
  x = x.reshape(b, -1, width) + p["pos_embedding"]
  x = _encoder(x, p["Transformer"])
  if "MAPHead_0" in p:
    h = p["MAPHead_0"]
    y = _mha(np.tile(h["probe"], [b, 1, 1]), x, h["MultiHeadDotProductAttention_0"])
    x = (y + _mlp(_ln(y, h["LayerNorm_0"]), h["MlpBlock_0"]))[:, 0]
  else:
    x = x.mean(1)
  return _normalize(_dense(x, p["head"]))


def ref_text(p, tokens):
  x = p["Embed_0"]["embedding"][tokens] + p["pos_embedding"]
  x = _encoder(x, p["Encoder_0"])[:, -1]
  return _normalize(_dense(x, p["head"]))


@pytest.mark.parametrize("pool, remat", [("map", None), ("gap", "nothing_saveable")])
def test_forward_matches_numpy_reference(pool, remat):
  cfg = small_config(
      image=dict(variant="mu/8", pool_type=pool, depth=2, remat_policy=remat),
      text=dict(variant="mu", vocab_size=50, max_len=6, remat_policy=remat),
  )
  model, shapes = _shapes(cfg)
  # Random values everywhere (not the init's zeros/ones), so that every parameter matters.
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda s: rng.normal(1.0 if s.shape == (32,) else 0.0, 0.3, s.shape).astype(np.float32),
      shapes,
  )
  image = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (3, 6)).astype(np.int32)
  zimg, ztxt, out = jax.jit(model.apply)({"params": params}, image, tokens)
  p64 = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  np.testing.assert_allclose(zimg, ref_image(p64["img"], image.astype(np.float64)), atol=2e-5)
  np.testing.assert_allclose(ztxt, ref_text(p64["txt"], tokens), atol=2e-5)
  np.testing.assert_allclose(out["t"], p64["t"][0], rtol=1e-6)
  np.testing.assert_allclose(out["b"], p64["b"][0], rtol=1e-6)


def test_remat_keeps_the_tree_and_the_gradients():
  plain = small_config(image=dict(variant="mu/8", pool_type="map", depth=2))
  remat = small_config(
      image=dict(variant="mu/8", pool_type="map", depth=2, remat_policy="nothing_saveable"),
      text=dict(variant="mu", vocab_size=50, max_len=6, remat_policy="dots_saveable"),
  )
  rng = np.random.default_rng(1)
  image = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (4, 6)).astype(np.int32)
  grads = []
  for cfg in (plain, remat):
    model = models.get_model(cfg)
    params = models.init_params(model, cfg, jax.random.key(0))

    def loss(p, model=model):
      zimg, ztxt, out = model.apply({"params": p}, image, tokens)
      return jnp.sum(jnp.exp(out["t"]) * zimg @ ztxt.T) + out["b"]

    grads.append(npz.flatten(jax.device_get(jax.jit(jax.grad(loss))(params))))
  assert grads[0].keys() == grads[1].keys()
  for k in grads[0]:
    np.testing.assert_allclose(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert any(np.abs(g).max() > 1e-3 for g in grads[0].values())


def test_unknown_remat_policy_raises():
  cfg = small_config(image=dict(variant="mu/8", remat_policy="save_everything"))
  with pytest.raises(ValueError, match="unknown remat_policy 'save_everything'"):
    _shapes(cfg)
