"""Image-text two-tower model (CLIP / SigLIP / LiT), laid out as big_vision's
`models/proj/image_text/two_towers.py`: params {"img": ViT, "txt": TextTransformer, "t": f32[1],
"b": f32[1] (only when bias_init is not None, i.e. SigLIP; CLIP checkpoints have no "b")}.
"""

from typing import Any, Optional, Union

import flax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmal_jax.models import npz
from mmal_jax.models import text_transformer
from mmal_jax.models import vit


class Model(nn.Module):
  """(image f32[B,S,S,3] | None, text int32[B,L] | None) -> (zimg, ztxt, out).

  zimg, ztxt: f32[B, out_dim] L2-normalized, or None when that input is None.
  out["t"]: the log-temperature, f32[] (logits = exp(t) * zimg @ ztxt.T + b).
  out["b"]: the bias f32[] (SigLIP only). out["img/..."], out["txt/..."]: tower internals.
  image / text: the tower options (variant, pool_type, ...), frozen so the model stays hashable
  and can be a static argument of jitted functions.
  """

  image: Any = flax.core.FrozenDict()
  text: Any = flax.core.FrozenDict()
  out_dim: Union[int, tuple] = 128
  temperature_init: float = 10.0
  bias_init: Optional[float] = None

  @nn.compact
  def __call__(self, image, text=None, *, train=False):
    dims = (self.out_dim, self.out_dim) if isinstance(self.out_dim, int) else self.out_dim
    zimg = ztxt = None
    out = {}
    if text is not None:
      ztxt, out_txt = text_transformer.TextTransformer(
          num_classes=dims[1], **_decode(self.text), name="txt"
      )(text, train=train)
      out.update({f"txt/{k}": v for k, v in out_txt.items()})
      ztxt = _l2_normalize(ztxt)
    if image is not None:
      zimg, out_img = vit.ViT(num_classes=dims[0], **_decode(self.image), name="img")(
          image, train=train
      )
      out.update({f"img/{k}": v for k, v in out_img.items()})
      zimg = _l2_normalize(zimg)
    t_init = jnp.log(self.temperature_init)
    out["t"] = self.param("t", lambda _, s: jnp.full(s, t_init, jnp.float32), (1,))[0]
    if self.bias_init is not None:
      out["b"] = self.param("b", lambda _, s: jnp.full(s, self.bias_init, jnp.float32), (1,))[0]
    return zimg, ztxt, out


def decode(tower: Any) -> dict:
  """A tower's options with its variant expanded (width, depth, ...), overrides applied."""
  kw = dict(tower)
  return {**vit.decode_variant(kw.pop("variant", None)), **kw}


_decode = decode


def _l2_normalize(z):
  # Same epsilon as big_vision, so that released checkpoints give the same embeddings.
  return z / (jnp.linalg.norm(z, axis=1, keepdims=True) + 1e-8)


# Where each tower keeps its encoder blocks: encoderblock_{i} per block, or, in checkpoints of models
# built with big_vision's `scan=True`, one `encoderblock` whose every array has a leading depth axis.
_ENCODERS = (("img", "Transformer"), ("txt", "Encoder_0"))


def unstack_blocks(tree: dict, path: str = "") -> dict:
  """Converts stacked encoder blocks (`img/Transformer/encoderblock/...` with a leading depth axis,
  and likewise `txt/Encoder_0/encoderblock/...`) to one `encoderblock_{i}` per block, slicing
  block i off the depth axis, as big_vision's ViT loader does (`scan_to_pyloop`: depth is the
  length of LayerNorm_0/bias). Other trees are returned as they are. Raises npz.CheckpointError if
  the stacked arrays disagree on the depth or per-block keys exist as well."""
  out = dict(tree)
  for tower, encoder in _ENCODERS:
    node = out.get(tower, {}).get(encoder)
    if not isinstance(node, dict) or "encoderblock" not in node:
      continue
    stacked = npz.flatten(node["encoderblock"])
    depths = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in stacked.items()}
    depth = depths.get("LayerNorm_0/bias")
    if depth is None or set(depths.values()) != {depth}:
      raise npz.CheckpointError(
          f"checkpoint {path!r} has stacked blocks {tower}/{encoder}/encoderblock whose arrays do "
          f"not share one leading depth axis ({sorted(set(map(str, depths.values())))}); "
          "re-export it"
      )
    if any(k.startswith("encoderblock_") for k in node):
      raise npz.CheckpointError(
          f"checkpoint {path!r} has both stacked {tower}/{encoder}/encoderblock and per-block "
          f"{tower}/{encoder}/encoderblock_i keys; re-export it"
      )
    node = {k: v for k, v in node.items() if k != "encoderblock"}
    for i in range(depth):
      node[f"encoderblock_{i}"] = npz.unflatten({k: v[i] for k, v in stacked.items()})
    out[tower] = {**out[tower], encoder: node}
  return out


def load(init_params: dict, path: str, model_config: Any = None) -> dict:
  """Loads a big_vision two-tower `.npz` whose tree matches `init_params` exactly (after stacked
  encoder blocks are converted, see unstack_blocks).

  Returns the checkpoint's arrays (as jnp, in init_params' dtypes). Raises npz.CheckpointError,
  listing every missing, unexpected and mis-shaped key, before converting anything.
  """
  restored = unstack_blocks(npz.load_big_vision_npz(path), path)
  what = ""
  if model_config is not None:
    what = (
        f" (model: image.variant={model_config.image.get('variant')!r},"
        f" text.variant={model_config.text.get('variant')!r}, out_dim={model_config.out_dim},"
        f" image_head={model_config.get('image_head', True)},"
        f" bias_init={model_config.get('bias_init')})"
    )
  flat, flat_init = npz.flatten(restored), npz.flatten(init_params)
  if set(flat_init) - set(flat) == {"img/head/kernel", "img/head/bias"} and set(flat) <= set(
      flat_init
  ):
    raise npz.CheckpointError(
        f"checkpoint {path!r} has no image head (img/head), as released SigLIP checkpoints "
        "(big_vision out_dim=(None, D)); set model.image_head=False and model.out_dim to the "
        "image tower's width"
    )
  npz.check_matches(flat, flat_init, path, what)
  return npz.unflatten({k: jnp.asarray(flat[k], dtype=v.dtype) for k, v in flat_init.items()})
