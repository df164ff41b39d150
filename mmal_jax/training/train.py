"""Contrastive training of a two-tower model on K annotated pairs: AdamW, warmup + cosine, clipping.

Batching (fixed shapes, so one compile serves every round whatever K is): each epoch shuffles the K
pairs and cuts them into ceil(K / batch_size) batches; the last, ragged batch (and the whole batch
when K < batch_size) is padded to batch_size with masked rows that drop out of the loss (see
losses.py), so no pair is ever dropped. The batch is sharded along the "data" axis of the given mesh
(default: all local devices; params replicated); batch_size is rounded up to a multiple of the device count with more
masked rows, which leaves the loss unchanged. The learning rate is an argument of the step, not
baked into the optimizer, so a different number of steps per round does not recompile either.
"""

import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmal_jax import mesh as mesh_lib
from mmal_jax.training import losses

LOSSES = ("sigmoid", "softmax")


class Diverged(FloatingPointError):
  """Training produced a non-finite (NaN or inf) loss or parameter; `fit` returns nothing."""


_FIELDS = ("epochs", "batch_size", "learning_rate", "weight_decay", "warmup_fraction", "grad_clip")


def lr_schedule(train_config: Any, total_steps: int) -> np.ndarray:
  """f32[total_steps]: linear warmup to learning_rate over warmup_fraction of the steps, then cosine
  decay towards 0. Step s of the warmup gets lr * (s + 1) / warmup, so no step is wasted at lr 0."""
  peak = float(train_config.learning_rate)
  warmup = int(round(float(train_config.warmup_fraction) * total_steps))
  s = np.arange(total_steps, dtype=np.float64)
  progress = (s - warmup) / max(total_steps - warmup, 1)
  lr = np.where(
      s < warmup,
      peak * (s + 1) / max(warmup, 1),
      peak * 0.5 * (1 + np.cos(np.pi * np.clip(progress, 0, 1))),
  )
  return lr.astype(np.float32)


def make_optimizer(
    weight_decay: float, grad_clip: float, lock_image: bool = False
) -> optax.GradientTransformation:
  """AdamW without its learning rate (train_step multiplies by -lr): clip by global norm, Adam,
  decoupled weight decay on matrices only (not biases, LayerNorm scales, t or b). With lock_image
  (LiT) the image tower gets zero updates and keeps no optimizer state."""
  decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)  # pylint: disable=unnecessary-lambda-assignment
  tx = optax.chain(
      optax.clip_by_global_norm(grad_clip),
      optax.scale_by_adam(),
      optax.add_decayed_weights(weight_decay, mask=decay_mask),
  )
  if not lock_image:
    return tx
  labels = lambda p: {
      k: jax.tree.map(lambda _, k=k: "frozen" if k == "img" else "train", v)  # pylint: disable=unnecessary-lambda-assignment
      for k, v in p.items()
  }
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


@functools.partial(jax.jit, static_argnames=("weight_decay", "grad_clip", "lock_image"))
def init_opt_state(params: dict, *, weight_decay: float, grad_clip: float, lock_image: bool):
  """make_optimizer(...).init(params), compiled once per tree structure and hyperparameters."""
  return make_optimizer(weight_decay, grad_clip, lock_image).init(params)


def compute_loss(model, params: dict, batch: dict, loss: str, lock_image: bool = False):
  """Scalar contrastive loss of `batch` = dict(image=f32[B,S,S,3], text=int32[B,L], mask=bool[B])."""
  if lock_image:
    params = {**params, "img": jax.lax.stop_gradient(params["img"])}
  zimg, ztxt, out = model.apply({"params": params}, batch["image"], batch["text"], train=True)
  if loss == "sigmoid":
    return losses.sigmoid_loss(zimg, ztxt, out["t"], out["b"], batch["mask"])
  return losses.softmax_loss(zimg, ztxt, out["t"], batch["mask"])


@functools.partial(
    jax.jit,
    static_argnames=("model", "loss", "lock_image", "weight_decay", "grad_clip"),
    donate_argnames=("params", "opt_state"),
)
def train_step(
    params: dict,
    opt_state: Any,
    batch: dict,
    lr: jax.Array,
    *,
    model,
    loss: str,
    lock_image: bool,
    weight_decay: float,
    grad_clip: float,
):
  """One AdamW step on batch = dict(image=f32[B,S,S,3], text=int32[B,L], mask=bool[B]); lr: f32[].

  Returns (params, opt_state, loss f32[]). Pure; compiled once per (model, loss, lock_image,
  weight_decay, grad_clip, shapes, shardings). params and opt_state are donated: their buffers
  hold the new ones (one copy of the weights and Adam moments in memory, not two), so the arrays
  passed in are deleted.
  """
  value, grads = jax.value_and_grad(lambda p: compute_loss(model, p, batch, loss, lock_image))(
      params
  )
  tx = make_optimizer(weight_decay, grad_clip, lock_image)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
  return params, opt_state, value


def _seed(key: jax.Array) -> np.ndarray:
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.asarray(jax.device_get(key)).ravel()


def _check(params, images, tokens, train_config, loss):
  missing = [f for f in _FIELDS if train_config.get(f) is None]
  if missing:
    raise ValueError(f"train config lacks {missing}; set all of {list(_FIELDS)}")
  if loss not in LOSSES:
    raise ValueError(f"loss={loss!r} is not known; use one of {LOSSES}")
  if loss == "sigmoid" and "b" not in params:
    raise ValueError(
        "loss='sigmoid' needs the bias parameter 'b'; build the model with"
        " model.bias_init set (e.g. -10.0), or use loss='softmax'"
    )
  if images.ndim != 4 or tokens.ndim != 2 or len(images) != len(tokens):
    raise ValueError(
        f"fit needs images f32[K,S,S,3] and tokens int32[K,L] with the same K; got"
        f" {images.shape} and {tokens.shape}"
    )
  if not np.issubdtype(images.dtype, np.floating) or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(
        f"fit needs float images in [-1, 1] and integer tokens; got {images.dtype} and"
        f" {tokens.dtype} (preprocess with mmal_jax.pp.preprocess.Preprocessor)"
    )
  if len(images) == 0:
    raise ValueError("fit needs at least one annotated pair; got K=0")
  if int(train_config.batch_size) < 1 or int(train_config.epochs) < 1:
    raise ValueError(
        f"train batch_size and epochs must be >= 1; got {train_config.batch_size},"
        f" {train_config.epochs}"
    )
  img, txt = params.get("img", {}), params.get("txt", {})
  if "pos_embedding" in txt and np.shape(txt["pos_embedding"])[1] != tokens.shape[1]:
    raise ValueError(
        f"tokens have length {tokens.shape[1]} but the text tower was built for"
        f" {np.shape(txt['pos_embedding'])[1]}; set model.text.max_len to match"
    )
  if "pos_embedding" in img and "embedding" in img:
    patch = np.shape(img["embedding"]["kernel"])[0]
    if (images.shape[1] // patch) * (images.shape[2] // patch) != np.shape(img["pos_embedding"])[1]:
      raise ValueError(
          f"images of size {images.shape[1:3]} do not fit the image tower's"
          f" {np.shape(img['pos_embedding'])[1]} patches of {patch}px; set"
          " model.image_size to the preprocessed image size"
      )


def fit(
    model,
    init_params: dict,
    images: np.ndarray,
    tokens: np.ndarray,
    train_config: Any,
    *,
    key: jax.Array,
    loss: str = "sigmoid",
    lock_image: bool = False,
    mesh: Optional[jax.sharding.Mesh] = None,
) -> tuple[dict, dict]:
  """Trains from init_params on K pairs (images[i], tokens[i]) for train_config.epochs epochs.

  images: f32[K, S, S, 3], tokens: int32[K, L]; key: shuffles the pairs (deterministic per key).
  mesh: the data-parallel mesh; batches are sharded along its "data" axis (default: all local
    devices, `mesh.data_mesh()`).
  Returns (params, info) with info["loss"]: f32[steps] per-step losses, info["steps_per_epoch"],
  info["batch_size"] (the padded global batch). Raises Diverged if a loss or a parameter is not
  finite at the end.
  """
  images, tokens = np.asarray(images), np.asarray(tokens)
  _check(init_params, images, tokens, train_config, loss)
  mesh = mesh or mesh_lib.data_mesh()
  devices = mesh.devices.reshape(-1)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

  k, batch_size = len(images), int(train_config.batch_size)
  global_batch = math.ceil(batch_size / len(devices)) * len(devices)
  steps_per_epoch = math.ceil(k / batch_size)
  lrs = lr_schedule(train_config, int(train_config.epochs) * steps_per_epoch)
  hparams = dict(
      model=model,
      loss=loss,
      lock_image=bool(lock_image),
      weight_decay=float(train_config.weight_decay),
      grad_clip=float(train_config.grad_clip),
  )

  # A copy, never an alias: train_step donates params, and init_params is reused every round.
  params = jax.device_put(init_params, replicated, may_alias=False)
  opt_state = init_opt_state(
      params,
      weight_decay=hparams["weight_decay"],
      grad_clip=hparams["grad_clip"],
      lock_image=hparams["lock_image"],
  )
  rng = np.random.default_rng(_seed(key))
  step_losses = []
  for _ in range(int(train_config.epochs)):
    perm = rng.permutation(k)
    for s in range(steps_per_epoch):
      idx = perm[s * batch_size : (s + 1) * batch_size]
      mask = np.arange(global_batch) < len(idx)
      idx = np.resize(idx, global_batch)  # Pad by repeating real rows; the mask hides them.
      batch = jax.device_put(dict(image=images[idx], text=tokens[idx], mask=mask), sharded)
      params, opt_state, value = train_step(
          params, opt_state, batch, lrs[len(step_losses)], **hparams
      )
      step_losses.append(value)
  info = dict(
      loss=np.asarray(jax.device_get(step_losses), np.float32),
      steps_per_epoch=steps_per_epoch,
      batch_size=global_batch,
  )
  _check_finite(params, info["loss"], lrs, train_config)
  return params, info


@jax.jit
def _all_finite(params):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))


def _check_finite(params, step_losses, lrs, train_config):
  """Raises Diverged, saying at which step and the likely cause, unless every loss and parameter
  is finite (one compiled reduction over the params)."""
  bad = np.flatnonzero(~np.isfinite(step_losses))
  if bad.size:
    step = int(bad[0])
    what = f"the loss became {step_losses[step]} at step {step + 1} of {len(step_losses)}"
  elif not bool(_all_finite(params)):
    step = len(step_losses) - 1
    what = f"a parameter became NaN or inf by step {len(step_losses)} (the loss stayed finite)"
  else:
    return
  raise Diverged(
      f"{what}, at learning rate {float(lrs[step]):.3g} (peak config.train.learning_rate="
      f"{float(train_config.learning_rate):g}, grad_clip={float(train_config.grad_clip):g}); "
      "the likely cause is a learning rate too high for this model, or non-finite input "
      "(images or checkpoint); lower --config.train.learning_rate"
  )
