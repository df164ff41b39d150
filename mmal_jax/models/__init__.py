"""Two-tower models from a model config.

model_config (ConfigDict) fields read here:
  image_size: int, input images are f32[B, image_size, image_size, 3].
  image: dict(variant="tiny/4" | "B/16" | ..., pool_type="gap"|"map"|"tok", posemb="learn"|"sincos2d",
    and optionally width/depth/mlp_dim/num_heads/patch_size/head_zeroinit overriding the variant,
    remat_policy=None | "nothing_saveable" | ... to recompute activations in the backward pass).
  text: dict(variant="tiny" | "B" | ..., vocab_size, max_len, pool_type="last"|..., remat_policy,
    and overrides).
  out_dim, temperature_init, bias_init (None: no "b" parameter, the CLIP layout).
  image_head (optional, default True): False builds the image tower without its projection
    `img/head` (big_vision's out_dim=(None, D), the layout of released SigLIP checkpoints): image
    embeddings are then the tower's width, which must equal out_dim (the text embedding size).
    out_dim may also be big_vision's pair (image, text) itself, e.g. (None, 768).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp

from mmal_jax.models import two_towers
from mmal_jax.models import vit

IMAGE_KEYS = (
    "variant",
    "patch_size",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "posemb",
    "pool_type",
    "head_zeroinit",
    "remat_policy",
)
TEXT_KEYS = (
    "variant",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "vocab_size",
    "pool_type",
    "max_len",
    "remat_policy",
)


def _tower(cfg: Any, allowed: tuple, name: str) -> flax.core.FrozenDict:
  kw = dict(cfg)
  unknown = sorted(set(kw) - set(allowed))
  if unknown:
    raise ValueError(f"model.{name} has unknown keys {unknown}; allowed keys are {list(allowed)}")
  if isinstance(kw.get("patch_size"), int):
    kw["patch_size"] = (kw["patch_size"],) * 2
  kw.pop("max_len", None)  # The input length, not a module option: pos_embedding takes its shape.
  return flax.core.FrozenDict({k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


def get_model(model_config: Any) -> two_towers.Model:
  """Builds the (hashable, stateless) two-tower Flax module for model_config."""
  if not model_config.text.get("vocab_size"):
    raise ValueError("model.text.vocab_size is required (the tokenizer's vocabulary size)")
  if "/" in str(model_config.text.get("variant", "")):
    raise ValueError(
        f"model.text.variant={model_config.text.variant!r} has a patch size; text"
        " variants are bare names such as 'B' or 'nano'"
    )
  loss = model_config.get("loss", "sigmoid")
  if loss == "sigmoid" and model_config.get("bias_init") is None:
    raise ValueError(
        "model.loss='sigmoid' needs model.bias_init (SigLIP's learnable bias, e.g."
        " -10.0); set it, or use model.loss='softmax' (CLIP)"
    )
  image = _tower(model_config.image, IMAGE_KEYS, "image")
  out_dim = out_dims(model_config)
  width = two_towers.decode(image).get("width", vit.ViT.width)
  if out_dim[0] is None and width != out_dim[1]:
    raise ValueError(
        f"model.image_head=False makes image embeddings the image tower's width ({width}), but "
        f"text embeddings have out_dim={out_dim[1]}; set model.out_dim={width} (released SigLIP "
        "checkpoints: the width of their image variant) or keep the image head"
    )
  return two_towers.Model(
      image=image,
      text=_tower(model_config.text, TEXT_KEYS, "text"),
      out_dim=out_dim,
      temperature_init=float(model_config.get("temperature_init", 10.0)),
      bias_init=model_config.get("bias_init"),
  )


def out_dims(model_config: Any) -> tuple:
  """(image projection size or None for no image head, text projection size) of model_config:
  model.out_dim as an int D gives (D, D), or (None, D) with model.image_head=False; a pair is
  taken as is."""
  out_dim = model_config.out_dim
  if isinstance(out_dim, (tuple, list)):
    if len(out_dim) != 2 or out_dim[1] is None:
      raise ValueError(f"model.out_dim={out_dim!r} must be an int or a pair (image or None, text)")
    return tuple(out_dim)
  if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
    raise ValueError(f"model.out_dim={out_dim!r} must be an int >= 1")
  head = model_config.get("image_head", True)
  if not isinstance(head, bool):
    raise ValueError(f"model.image_head={head!r} must be True or False")
  return (out_dim if head else None, out_dim)


def embed_dim(model_config: Any) -> int:
  """The size of both towers' embeddings (the text projection size)."""
  return out_dims(model_config)[1]


def init_params(model: two_towers.Model, model_config: Any, key: jax.Array) -> dict:
  """Random parameters {"img", "txt", "t"[, "b"]} for inputs of model_config's sizes."""
  s, l = model_config.image_size, model_config.text.max_len
  image = jnp.zeros((1, s, s, 3), jnp.float32)
  text = jnp.zeros((1, l), jnp.int32)
  return jax.jit(model.init)(key, image, text)["params"]
