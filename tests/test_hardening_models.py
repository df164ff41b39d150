"""Released big_vision SigLIP checkpoints: no image head (model.image_head=False, big_vision's
out_dim=(None, D)), their exact key structure (hand-written below from big_vision's module layout,
not from our model code), and stacked-block (`scan=True`) checkpoints converted per block."""

import os

import jax
import ml_collections
import numpy as np
import pytest

from mmal_jax import experiment
from mmal_jax import main
from mmal_jax import models
from mmal_jax.models import npz
from mmal_jax.models import two_towers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def released_siglip_shapes(*, width, depth, mlp, heads, patch, image_size, vocab, seq, txt_width):
  """{key: shape} of a released SigLIP two-tower .npz (ViT with MAP head and no image head; text
  transformer with a head to the image width), written out from big_vision's layout."""
  d_head = width // heads
  t_head = txt_width // (txt_width // d_head)

  def block(prefix, w, h, m):
    dh = w // h
    out = {}
    for ln in ("LayerNorm_0", "LayerNorm_1"):
      out[f"{prefix}/{ln}/scale"] = (w,)
      out[f"{prefix}/{ln}/bias"] = (w,)
    out[f"{prefix}/MlpBlock_0/Dense_0/kernel"] = (w, m)
    out[f"{prefix}/MlpBlock_0/Dense_0/bias"] = (m,)
    out[f"{prefix}/MlpBlock_0/Dense_1/kernel"] = (m, w)
    out[f"{prefix}/MlpBlock_0/Dense_1/bias"] = (w,)
    for qkv in ("query", "key", "value"):
      out[f"{prefix}/MultiHeadDotProductAttention_0/{qkv}/kernel"] = (w, h, dh)
      out[f"{prefix}/MultiHeadDotProductAttention_0/{qkv}/bias"] = (h, dh)
    out[f"{prefix}/MultiHeadDotProductAttention_0/out/kernel"] = (h, dh, w)
    out[f"{prefix}/MultiHeadDotProductAttention_0/out/bias"] = (w,)
    return out

  shapes = {
      "img/embedding/kernel": (patch, patch, 3, width),
      "img/embedding/bias": (width,),
      "img/pos_embedding": (1, (image_size // patch) ** 2, width),
      "img/Transformer/encoder_norm/scale": (width,),
      "img/Transformer/encoder_norm/bias": (width,),
      "img/MAPHead_0/probe": (1, 1, width),
      "img/MAPHead_0/LayerNorm_0/scale": (width,),
      "img/MAPHead_0/LayerNorm_0/bias": (width,),
      "txt/Embed_0/embedding": (vocab, txt_width),
      "txt/pos_embedding": (1, seq, txt_width),
      "txt/Encoder_0/encoder_norm/scale": (txt_width,),
      "txt/Encoder_0/encoder_norm/bias": (txt_width,),
      "txt/head/kernel": (txt_width, width),
      "txt/head/bias": (width,),
      "t": (1,),
      "b": (1,),
  }
  map_block = block("img/MAPHead_0", width, heads, mlp)
  shapes.update({k: v for k, v in map_block.items() if "LayerNorm_1" not in k})
  for i in range(depth):
    shapes.update(block(f"img/Transformer/encoderblock_{i}", width, heads, mlp))
    shapes.update(block(f"txt/Encoder_0/encoderblock_{i}", txt_width, txt_width // t_head, mlp))
  return shapes


def _siglip_model_config(variant, txt_variant, out_dim, image_size, vocab, seq, **image):
  config = ml_collections.ConfigDict(
      dict(
          image=dict(variant=variant, pool_type="map", posemb="learn", **image),
          text=dict(variant=txt_variant, vocab_size=vocab, max_len=seq, pool_type="last"),
          image_size=image_size,
          out_dim=out_dim,
          image_head=False,
          temperature_init=10.0,
          bias_init=-10.0,
          loss="sigmoid",
          lock_image=False,
      )
  )
  return config


def _model_shapes(config):
  model = models.get_model(config)
  tree = jax.eval_shape(lambda k: models.init_params(model, config, k), jax.random.key(0))
  return {k: tuple(v.shape) for k, v in npz.flatten(tree).items()}


def test_b16_without_image_head_has_the_released_412_keys():
  config = _siglip_model_config("B/16", "B", 768, 224, 32_000, 64)
  want = released_siglip_shapes(
      width=768,
      depth=12,
      mlp=3072,
      heads=12,
      patch=16,
      image_size=224,
      vocab=32_000,
      seq=64,
      txt_width=768,
  )
  assert len(want) == 412
  assert _model_shapes(config) == want
  config.image_head = True  # the head the README's old route added: two keys too many
  assert set(_model_shapes(config)) - set(want) == {"img/head/kernel", "img/head/bias"}


SMALL = dict(width=32, depth=2, mlp=64, heads=2, patch=8, image_size=16, vocab=50, seq=8)


def _small_config():
  return _siglip_model_config(
      None, None, 32, 16, 50, 8, width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8
  )


def _small_text(config):
  for k, v in dict(width=32, depth=2, mlp_dim=64, num_heads=2).items():
    config.text[k] = v
  return config


def _released_file(tmp_path, *, stacked=False):
  """A released-layout .npz at a small size: "params/<key>" for every key of the structure,
  random values; with `stacked`, each tower's blocks stored as one `encoderblock` with a leading
  depth axis (big_vision scan=True)."""
  rng = np.random.default_rng(0)
  shapes = released_siglip_shapes(**SMALL, txt_width=32)
  flat = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
  stored = dict(flat)
  if stacked:
    for encoder in ("img/Transformer", "txt/Encoder_0"):
      prefix = f"{encoder}/encoderblock_0/"
      for k in [k for k in flat if k.startswith(prefix)]:
        rest = k[len(prefix) :]
        stored[f"{encoder}/encoderblock/{rest}"] = np.stack(
            [flat[f"{encoder}/encoderblock_{i}/{rest}"] for i in range(SMALL["depth"])]
        )
        for i in range(SMALL["depth"]):
          del stored[f"{encoder}/encoderblock_{i}/{rest}"]
  path = str(tmp_path / ("stacked.npz" if stacked else "released.npz"))
  np.savez(path, **{f"params/{k}": v for k, v in stored.items()})
  return path, flat


@pytest.mark.parametrize("stacked", [False, True])
def test_small_released_file_loads_without_image_head(tmp_path, stacked):
  path, flat = _released_file(tmp_path, stacked=stacked)
  config = _small_text(_small_config())
  config.init = path
  model, params = experiment.load_model(config)
  got = npz.flatten(params)
  assert set(got) == set(flat)
  for k, v in flat.items():
    np.testing.assert_array_equal(np.asarray(got[k]), v, err_msg=k)
  image = np.zeros((2, 16, 16, 3), np.float32)
  zimg, ztxt, _ = model.apply({"params": params}, image, np.ones((2, 8), np.int32))
  assert zimg.shape == (2, 32) and ztxt.shape == (2, 32)
  assert models.embed_dim(config) == 32


def test_stacked_blocks_with_bad_depth_are_refused(tmp_path):
  path, _ = _released_file(tmp_path, stacked=True)
  with np.load(path) as f:
    stored = {k: f[k] for k in f.files}
  key = "params/img/Transformer/encoderblock/LayerNorm_0/scale"
  stored[key] = stored[key][:1]
  np.savez(path, **stored)
  with pytest.raises(npz.CheckpointError, match="leading depth axis"):
    two_towers.unstack_blocks(npz.load_big_vision_npz(path), path)


def test_image_head_field_from_the_command_line(tmp_path):
  """With the field in the config file (as defaults.py would have it), --config.model.image_head=
  False parses and the released-layout file loads through the setup path main uses."""
  path, flat = _released_file(tmp_path)
  cfg = tmp_path / "cfg.py"
  cfg.write_text(
      "import ml_collections\n"
      "from configs import siglip_colorswap\n"
      "def get_config():\n"
      "  config = siglip_colorswap.get_config()\n"
      "  config.model.image = ml_collections.ConfigDict(dict(pool_type='map', posemb='learn',\n"
      "      width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8))\n"
      "  config.model.text = ml_collections.ConfigDict(dict(vocab_size=50, max_len=8,\n"
      "      pool_type='last', width=32, depth=2, mlp_dim=64, num_heads=2))\n"
      "  config.model.update(image_size=16, out_dim=32, image_head=True)\n"
      "  return config\n"
  )
  config, _ = main.parse(
      ["main", f"--config={cfg}", "--config.model.image_head=False", f"--config.model.init={path}"]
  )
  assert config.model.image_head is False
  _, params = experiment.load_model(config.model)
  got = npz.flatten(params)
  assert set(got) == set(flat)
  np.testing.assert_array_equal(np.asarray(got["txt/head/kernel"]), flat["txt/head/kernel"])


def test_width_must_match_out_dim_without_image_head():
  config = _small_text(_small_config())
  config.out_dim = 48
  with pytest.raises(ValueError, match="image_head=False.*width \\(32\\).*out_dim=48"):
    models.get_model(config)


def test_missing_image_head_suggests_image_head_false(tmp_path):
  path, _ = _released_file(tmp_path)
  config = _small_text(_small_config())
  config.image_head = True
  config.init = path
  with pytest.raises(experiment.ConfigError, match="image_head=False"):
    experiment.load_model(config)


# The released-SigLIP B/16 route of the README (hardening-readme.md), minus the tokenizer flags.
B16_FLAGS = [
    "--config.model.image.variant=B/16",
    "--config.model.image.width=768",
    "--config.model.image.depth=12",
    "--config.model.image.mlp_dim=3072",
    "--config.model.image.pool_type=map",
    "--config.model.text.variant=B",
    "--config.model.text.width=768",
    "--config.model.text.depth=12",
    "--config.model.text.mlp_dim=3072",
    "--config.model.image_size=224",
    "--config.model.out_dim=768",
    "--config.model.image_head=False",
    "--config.model.text.vocab_size=32000",
    "--config.model.text.max_len=64",
]


def test_b16_command_line_route_builds_the_released_layout(tmp_path):
  """The default config carries the bundled tiny model's width/depth/mlp_dim, which override a
  variant; the README route sets them, and its model has exactly the released 412 keys."""
  cfg = tmp_path / "cfg.py"
  cfg.write_text(
      "from configs import siglip_colorswap\n"
      "def get_config():\n"
      "  config = siglip_colorswap.get_config()\n"
      "  config.model.image_head = True  # (the field defaults.py should carry)\n"
      "  return config\n"
  )
  config, _ = main.parse(["main", f"--config={cfg}", *B16_FLAGS])
  want = released_siglip_shapes(
      width=768,
      depth=12,
      mlp=3072,
      heads=12,
      patch=16,
      image_size=224,
      vocab=32_000,
      seq=64,
      txt_width=768,
  )
  assert _model_shapes(config.model) == want
