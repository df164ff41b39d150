"""Text tower, parameters named as big_vision's `models/proj/image_text/text_transformer.py`.

Embed_0 (token embedding), pos_embedding, Encoder_0/encoderblock_{i}/..., head. No attention mask, as
in SigLIP: sequences end with a "sticky" EOS and are padded with EOS, so the last position ("last"
pooling) always holds an EOS that has attended to the whole caption.
"""

from typing import Optional

import flax.linen as nn
import numpy as np

from mmal_jax.models import vit

POOL_TYPES = ("last", "first", "gap", "map")


class TextTransformer(nn.Module):
  """int32[B, L] token ids -> (f32[B, num_classes or width], dict)."""

  num_classes: Optional[int] = None
  width: int = 512
  depth: int = 12
  mlp_dim: Optional[int] = None
  num_heads: int = 8
  vocab_size: int = 32_000
  pool_type: str = "last"
  remat_policy: Optional[str] = None

  @nn.compact
  def __call__(self, text, *, train=False):
    del train  # No dropout: kept for big_vision's call signature.
    out = {}
    x = nn.Embed(num_embeddings=self.vocab_size, features=self.width)(text)
    _, l, d = x.shape
    x = x + self.param(
        "pos_embedding", nn.initializers.normal(stddev=1 / np.sqrt(d)), (1, l, d), x.dtype
    )
    x = out["encoded"] = vit.Encoder(
        depth=self.depth,
        mlp_dim=self.mlp_dim,
        num_heads=self.num_heads,
        remat_policy=self.remat_policy,
    )(x)
    if self.pool_type == "last":
      x = x[:, -1]
    elif self.pool_type == "first":
      x = x[:, 0]
    elif self.pool_type == "gap":
      x = x.mean(axis=1)
    elif self.pool_type == "map":
      x = vit.MAPHead(num_heads=self.num_heads, mlp_dim=self.mlp_dim)(x)
    else:
      raise ValueError(f"unknown text pool_type {self.pool_type!r}; use one of {POOL_TYPES}")
    out["pre_logits"] = x
    if self.num_classes:
      x = out["logits"] = nn.Dense(self.num_classes, name="head")(x)
    return x, out
