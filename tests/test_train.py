"""fit / train_step: data parallel == single device, AdamW vs a NumPy reference, LiT, no recompiles."""

import math

import jax
import ml_collections
import numpy as np
import pytest

from mmal_jax import models
from mmal_jax.mesh import data_mesh
from mmal_jax.models import npz
from mmal_jax.training import train
from small_models import small_config
from small_models import train_config


@pytest.fixture(scope="module")
def setup():
  cfg = small_config()
  model = models.get_model(cfg)
  params = models.init_params(model, cfg, jax.random.key(0))
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (20, 16, 16, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (20, 6)).astype(np.int32)
  return model, jax.device_get(params), images, tokens


def _assert_trees_close(a, b, **tol):
  fa, fb = npz.flatten(jax.device_get(a)), npz.flatten(jax.device_get(b))
  assert fa.keys() == fb.keys()
  for k in fa:
    # An attention key bias adds the same q.b to every logit of a softmax row, so its exact
    # gradient is zero; Adam divides the rounding noise left in it by its own size, so its
    # trajectory is noise and is not compared.
    if not k.endswith("key/bias"):
      np.testing.assert_allclose(fa[k], fb[k], err_msg=k, **tol)


def test_data_parallel_matches_one_device_and_never_recompiles(setup):
  model, params, images, tokens = setup
  assert jax.local_device_count() == 8, "tests/conftest.py should give 8 host CPU devices"
  # K=20 at batch 12: a full batch and a ragged one of 8 per epoch. On 8 devices the global batch
  # is padded to 16 (4 more masked rows); the curve must not change.
  p1, info1 = train.fit(
      model, params, images, tokens, train_config(), key=jax.random.key(3), mesh=data_mesh(1)
  )
  p8, info8 = train.fit(model, params, images, tokens, train_config(), key=jax.random.key(3))
  assert (info1["batch_size"], info8["batch_size"], len(info8["loss"])) == (12, 16, 4)
  np.testing.assert_allclose(info8["loss"], info1["loss"], rtol=1e-5)
  _assert_trees_close(p8, p1, rtol=1e-4, atol=1e-5)
  assert not np.allclose(npz.flatten(p8)["img/head/kernel"], params["img"]["head"]["kernel"])

  compiled = train.train_step._cache_size()  # pylint: disable=protected-access
  again, info = train.fit(model, params, images, tokens, train_config(), key=jax.random.key(3))
  np.testing.assert_array_equal(info["loss"], info8["loss"])  # Deterministic per key.
  _, other = train.fit(model, params, images, tokens, train_config(), key=jax.random.key(4))
  assert not np.array_equal(other["loss"], info8["loss"])
  # Other K (a later round, or K < batch_size) and other epoch counts reuse the compiled step.
  _, small = train.fit(
      model, params, images[:5], tokens[:5], train_config(epochs=3), key=jax.random.key(3)
  )
  assert len(small["loss"]) == 3 and np.all(np.isfinite(small["loss"]))
  assert train.train_step._cache_size() == compiled  # pylint: disable=protected-access


def _numpy_adamw(params, grad_fn, lrs, wd, clip, b1=0.9, b2=0.999, eps=1e-8):
  """Reference: clip by global norm, Adam with bias correction, decoupled decay on matrices."""
  p = {k: np.asarray(v, np.float64) for k, v in npz.flatten(params).items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  norms = []
  for step, lr in enumerate(lrs, start=1):
    g = {
        k: np.asarray(x, np.float64)
        for k, x in npz.flatten(
            jax.device_get(grad_fn(npz.unflatten({k: np.float32(x) for k, x in p.items()})))
        ).items()
    }
    norm = math.sqrt(sum(np.sum(x**2) for x in g.values()))
    norms.append(norm)
    for k in p:
      gk = g[k] * min(1.0, clip / norm)
      m[k] = b1 * m[k] + (1 - b1) * gk
      v[k] = b2 * v[k] + (1 - b2) * gk**2
      u = (m[k] / (1 - b1**step)) / (np.sqrt(v[k] / (1 - b2**step)) + eps)
      u = u + (wd * p[k] if p[k].ndim >= 2 else 0.0)
      p[k] = p[k] - lr * u
  return npz.unflatten(p), norms


def test_two_steps_match_numpy_adamw(setup):
  model, params, images, tokens = setup
  images, tokens = images[:12], tokens[:12]
  cfg = train_config(warmup_fraction=0.0, learning_rate=1e-2)
  got, _ = train.fit(model, params, images, tokens, cfg, key=jax.random.key(0), mesh=data_mesh(1))
  batch = dict(image=images, text=tokens, mask=np.ones(12, bool))
  grad_fn = jax.jit(jax.grad(lambda p: train.compute_loss(model, p, batch, "sigmoid")))
  # Two steps of cosine decay without warmup: lr * (1 + cos(pi * s / 2)) / 2 for s = 0, 1. Each
  # epoch sees the same 12 pairs in another order, which leaves the loss unchanged.
  want, norms = _numpy_adamw(params, grad_fn, [1e-2, 0.5e-2], wd=1.0, clip=0.5)
  assert min(norms) > 0.5  # Clipping is active in both steps.
  _assert_trees_close(got, want, rtol=1e-4, atol=5e-5)


def test_lit_locks_the_image_tower(setup):
  model, params, images, tokens = setup
  got, info = train.fit(
      model,
      params,
      images,
      tokens,
      train_config(),
      key=jax.random.key(1),
      loss="softmax",
      lock_image=True,
      mesh=data_mesh(1),
  )
  got = jax.device_get(got)
  _assert_trees_close(got["img"], params["img"], rtol=0, atol=0)
  assert not np.allclose(got["txt"]["head"]["kernel"], params["txt"]["head"]["kernel"])
  assert got["t"] != params["t"] and np.all(np.isfinite(info["loss"]))


def test_train_step_donates_and_fit_keeps_init_params(setup):
  model, params, images, tokens = setup
  on_device = jax.device_put(params, jax.local_devices()[0])
  runs = [
      train.fit(
          model,
          on_device,
          images[:12],
          tokens[:12],
          train_config(epochs=1),
          key=jax.random.key(2),
          mesh=data_mesh(1),
      )[0]
      for _ in range(2)
  ]
  # The second fit started from the same, intact arrays, so it retraces the first exactly.
  _assert_trees_close(runs[1], runs[0], rtol=0, atol=0)
  _assert_trees_close(on_device, params, rtol=0, atol=0)
  # train_step itself reuses the buffers of params and opt_state for their updates.
  opt_state = train.init_opt_state(runs[0], weight_decay=1.0, grad_clip=0.5, lock_image=False)
  batch = dict(image=images[:12], text=tokens[:12], mask=np.ones(12, bool))
  train.train_step(
      runs[0],
      opt_state,
      batch,
      np.float32(1e-3),
      model=model,
      loss="sigmoid",
      lock_image=False,
      weight_decay=1.0,
      grad_clip=0.5,
  )
  assert all(x.is_deleted() for x in jax.tree.leaves((runs[0], opt_state)))


def test_training_fits_a_small_set(setup):
  model, params, images, tokens = setup
  _, info = train.fit(
      model,
      params,
      images[:8],
      tokens[:8],
      train_config(epochs=40, learning_rate=3e-3),
      key=jax.random.key(0),
  )
  assert info["loss"][-1] < 0.3 * info["loss"][0]


def test_lr_schedule_shape():
  lr = train.lr_schedule(train_config(learning_rate=2.0, warmup_fraction=0.25), 8)
  np.testing.assert_allclose(lr[:2], [1.0, 2.0])  # Warmup: 2 steps, linear to the peak.
  want = [2.0 * 0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)]
  np.testing.assert_allclose(lr[2:], want, rtol=1e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(images=lambda x: x[:0], tokens=lambda x: x[:0]), "at least one"),
        (dict(tokens=lambda x: x[:5]), "same K"),
        (dict(images=lambda x: (x * 127 + 128).astype(np.uint8)), "float images"),
        (dict(tokens=lambda x: x[:, :4]), "max_len"),
        (dict(images=lambda x: np.zeros((10, 24, 24, 3), np.float32)), "image_size"),
        (dict(loss="hinge"), "not known"),
        (dict(params=lambda p: {k: v for k, v in p.items() if k != "b"}), "bias"),
        (dict(cfg=ml_collections.ConfigDict(dict(epochs=1, batch_size=4))), "lacks"),
    ],
)
def test_bad_inputs_raise_before_work(setup, change, match):
  model, params, images, tokens = setup
  same = lambda x: x  # pylint: disable=unnecessary-lambda-assignment
  with pytest.raises(ValueError, match=match):
    train.fit(
        model,
        change.get("params", same)(params),
        change.get("images", same)(images[:10]),
        change.get("tokens", same)(tokens[:10]),
        change.get("cfg", train_config()),
        key=jax.random.key(0),
        loss=change.get("loss", "sigmoid"),
    )
