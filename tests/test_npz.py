"""big_vision .npz checkpoints: round trip, released-file layout, and clear errors."""

import os

import jax
import numpy as np
import pytest

from mmal_jax import models
from mmal_jax.models import npz
from mmal_jax.models import two_towers
from small_models import small_config


def _shapes(cfg):
  model = models.get_model(cfg)
  return jax.eval_shape(lambda k: models.init_params(model, cfg, k), jax.random.key(0))


def _random_params(cfg, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), _shapes(cfg))


def _nested_equal(a, b):
  fa, fb = npz.flatten(a), npz.flatten(b)
  return fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


def test_round_trip_and_file_layout(tmp_path):
  params = _random_params(small_config(), 0)
  path = str(tmp_path / "ckpt.npz")
  npz.save_big_vision_npz(params, path)
  assert os.listdir(tmp_path) == ["ckpt.npz"]  # No temporary file left behind.
  with np.load(path) as f:
    keys = set(f.files)
    np.testing.assert_array_equal(
        f["params/img/Transformer/encoderblock_0/LayerNorm_0/scale"],
        params["img"]["Transformer"]["encoderblock_0"]["LayerNorm_0"]["scale"],
    )
  assert "params/txt/head/kernel" in keys and "params/t" in keys and "params/b" in keys
  assert _nested_equal(npz.load_big_vision_npz(path), params)
  loaded = two_towers.load(params, path, small_config())
  assert _nested_equal(jax.device_get(loaded), params)


def test_loads_file_written_as_big_vision_does(tmp_path):
  """A file written with plain np.savez and "params/..." keys (the released layout) loads, and so
  does one without the prefix."""
  cfg = small_config()
  params = _random_params(cfg, 1)
  flat = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}/")
      else:
        flat[prefix + k] = v

  walk(params, "")
  np.savez(tmp_path / "bv.npz", **{f"params/{k}": v for k, v in flat.items()})
  np.savez(tmp_path / "plain.npz", **flat)
  for name in ("bv.npz", "plain.npz"):
    got = two_towers.load(_random_params(cfg, 2), str(tmp_path / name), cfg)
    assert _nested_equal(jax.device_get(got), params)


def test_mismatched_checkpoint_lists_keys(tmp_path):
  path = str(tmp_path / "other.npz")
  npz.save_big_vision_npz(
      _random_params(small_config(out_dim=8, bias_init=None, loss="softmax"), 0), path
  )
  with pytest.raises(npz.CheckpointError) as e:
    two_towers.load(_random_params(small_config(), 0), path, small_config())
  msg = str(e.value)
  assert "\n" not in msg
  assert "missing (1): b" in msg
  assert "img/head/kernel (32, 8) vs (32, 16)" in msg and "txt/head/bias (8,) vs (16,)" in msg
  extra = _random_params(small_config(), 0)
  extra["img"]["cls"] = np.zeros((1, 1, 32), np.float32)
  npz.save_big_vision_npz(extra, path)
  with pytest.raises(npz.CheckpointError, match=r"unexpected \(1\): img/cls"):
    two_towers.load(_random_params(small_config(), 0), path, small_config())


def test_missing_and_truncated_files(tmp_path):
  with pytest.raises(npz.CheckpointError, match="does not exist"):
    npz.load_big_vision_npz(str(tmp_path / "nope.npz"))
  path = tmp_path / "ckpt.npz"
  npz.save_big_vision_npz(_random_params(small_config(), 0), str(path))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(npz.CheckpointError, match="truncated or corrupt"):
    npz.load_big_vision_npz(str(path))
  path.write_bytes(b"")
  with pytest.raises(npz.CheckpointError):
    npz.load_big_vision_npz(str(path))
