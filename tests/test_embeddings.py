"""embed_images / embed_texts: padded fixed-size batches equal one unbatched forward pass."""

import jax
import ml_collections
import numpy as np
import pytest

from mmal_jax import embeddings
from mmal_jax import models


def small_config():
  return ml_collections.ConfigDict(
      dict(
          image_size=16,
          image=dict(variant="mu/8", pool_type="map"),
          text=dict(variant="mu", vocab_size=50, max_len=6),
          out_dim=16,
          temperature_init=10.0,
          bias_init=-10.0,
          loss="sigmoid",
      )
  )


@pytest.fixture(scope="module")
def setup():
  cfg = small_config()
  model = models.get_model(cfg)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (11, 16, 16, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (11, 6)).astype(np.int32)
  return model, models.init_params(model, cfg, jax.random.key(0)), images, tokens


def test_batched_equals_direct_and_compiles_once(setup):
  model, params, images, tokens = setup
  zimg_ref, ztxt_ref, _ = jax.jit(model.apply)({"params": params}, images, tokens)
  # 11 rows in batches of 8 (on 8 devices; 1 row each): a full batch and a padded one.
  zimg = embeddings.embed_images(model, params, images, batch_size=8)
  ztxt = embeddings.embed_texts(model, params, tokens, batch_size=8)
  assert zimg.dtype == ztxt.dtype == np.float32 and zimg.shape == ztxt.shape == (11, 16)
  np.testing.assert_allclose(zimg, zimg_ref, atol=1e-5)
  np.testing.assert_allclose(ztxt, ztxt_ref, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(zimg, axis=1), 1.0, rtol=1e-5)
  compiled = embeddings._embed._cache_size()  # pylint: disable=protected-access
  np.testing.assert_allclose(
      embeddings.embed_images(model, params, images[:3], batch_size=8), zimg_ref[:3], atol=1e-5
  )
  assert embeddings.embed_texts(model, params, tokens[:0], batch_size=8).shape == (0, 16)
  assert embeddings._embed._cache_size() == compiled  # pylint: disable=protected-access


def test_bad_inputs_raise(setup):
  model, params, images, tokens = setup
  with pytest.raises(ValueError, match="images"):
    embeddings.embed_images(model, params, images[..., 0])
  with pytest.raises(ValueError, match="token ids"):
    embeddings.embed_texts(model, params, tokens.astype(np.float32))
