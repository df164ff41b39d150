"""Vision Transformer image tower, parameters named as big_vision's `models/vit.py`.

Module names (`embedding`, `pos_embedding`, `Transformer/encoderblock_{i}/...`, `Transformer/encoder_norm`,
`MAPHead_0`, `head`) are what released big_vision checkpoints use, so their `.npz` files load as is.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Sizes from Table 2 of arXiv:2106.04560 (big_vision's table), plus the CPU-sized "tiny" and "nano"
# towers that the embedded default trains in minutes on two CPU cores.
_WIDTH = {
    "nano": 32,
    "tiny": 64,
    "mu": 32,
    "Ti": 192,
    "S": 384,
    "M": 512,
    "B": 768,
    "L": 1024,
    "So400m": 1152,
    "H": 1280,
    "g": 1408,
    "G": 1664,
    "e": 1792,
}
_DEPTH = {
    "nano": 1,
    "tiny": 2,
    "mu": 1,
    "Ti": 12,
    "S": 12,
    "M": 12,
    "B": 12,
    "L": 24,
    "So400m": 27,
    "H": 32,
    "g": 40,
    "G": 48,
    "e": 56,
}
_MLP = {
    "nano": 128,
    "tiny": 256,
    "mu": 128,
    "Ti": 768,
    "S": 1536,
    "M": 2048,
    "B": 3072,
    "L": 4096,
    "So400m": 4304,
    "H": 5120,
    "g": 6144,
    "G": 8192,
    "e": 15360,
}
_HEADS = {
    "nano": 2,
    "tiny": 2,
    "mu": 2,
    "Ti": 3,
    "S": 6,
    "M": 8,
    "B": 12,
    "L": 16,
    "So400m": 16,
    "H": 16,
    "g": 16,
    "G": 16,
    "e": 16,
}
VARIANTS = tuple(_WIDTH)


def decode_variant(variant: Optional[str]) -> dict:
  """ "B/16" -> dict(width=768, depth=12, mlp_dim=3072, num_heads=12, patch_size=(16, 16))."""
  if variant is None:
    return {}
  name, _, patch = variant.partition("/")
  if name not in _WIDTH or (patch and not patch.isdigit()):
    raise ValueError(
        f"unknown model variant {variant!r}; use NAME or NAME/PATCH with NAME in"
        f" {VARIANTS}, e.g. 'B/16' or 'tiny/4'"
    )
  out = dict(width=_WIDTH[name], depth=_DEPTH[name], mlp_dim=_MLP[name], num_heads=_HEADS[name])
  if patch:
    out["patch_size"] = (int(patch), int(patch))
  return out


def posemb_sincos_2d(h: int, w: int, width: int, temperature: float = 10_000.0) -> jnp.ndarray:
  """Fixed 2D sin-cos position embedding, f32[1, h*w, width] (MoCo v3)."""
  if width % 4:
    raise ValueError(f"sincos2d position embedding needs width % 4 == 0, got width={width}")
  y, x = np.mgrid[:h, :w]
  omega = 1.0 / temperature ** (np.arange(width // 4) / max(width // 4 - 1, 1))
  y = np.einsum("m,d->md", y.ravel(), omega)
  x = np.einsum("m,d->md", x.ravel(), omega)
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return jnp.asarray(pe, jnp.float32)[None]


class MlpBlock(nn.Module):
  """Dense -> GELU -> Dense, f32[B, L, D] -> f32[B, L, D]."""

  mlp_dim: Optional[int] = None

  @nn.compact
  def __call__(self, x):
    inits = dict(
        kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.normal(stddev=1e-6)
    )
    d = x.shape[-1]
    x = nn.gelu(nn.Dense(self.mlp_dim or 4 * d, **inits)(x))
    return nn.Dense(d, **inits)(x)


class Encoder1DBlock(nn.Module):
  """Pre-LayerNorm transformer block (self-attention + MLP, both residual)."""

  mlp_dim: Optional[int] = None
  num_heads: int = 12

  @nn.compact
  def __call__(self, x):
    y = nn.LayerNorm()(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform()
    )(y, y)
    x = x + y
    return x + MlpBlock(mlp_dim=self.mlp_dim)(nn.LayerNorm()(x))


REMAT_POLICIES = tuple(p for p in dir(jax.checkpoint_policies) if p.endswith("saveable"))


class Encoder(nn.Module):
  """`depth` blocks named encoderblock_{i}, then the final `encoder_norm`.

  remat_policy: None keeps every block's activations for the backward pass; a name from
  `jax.checkpoint_policies` (e.g. "nothing_saveable") recomputes them in the backward pass instead
  (B/16: 171 instead of 140 GFLOP per example), so that larger batches fit on GPUs and TPUs. The
  parameter tree is the same either way. XLA's CPU backend gains no memory from it (measured:
  20.0 GiB of temporaries for a B/16 step at batch 64 either way).
  """

  depth: int
  mlp_dim: Optional[int] = None
  num_heads: int = 12
  remat_policy: Optional[str] = None

  @nn.compact
  def __call__(self, x):
    block = Encoder1DBlock
    if self.remat_policy is not None:
      if self.remat_policy not in REMAT_POLICIES:
        raise ValueError(
            f"unknown remat_policy {self.remat_policy!r}; use None or one of" f" {REMAT_POLICIES}"
        )
      block = nn.remat(Encoder1DBlock, policy=getattr(jax.checkpoint_policies, self.remat_policy))
    for i in range(self.depth):
      x = block(mlp_dim=self.mlp_dim, num_heads=self.num_heads, name=f"encoderblock_{i}")(x)
    return nn.LayerNorm(name="encoder_norm")(x)


class MAPHead(nn.Module):
  """Multihead attention pooling with a learned probe, f32[B, L, D] -> f32[B, D]."""

  mlp_dim: Optional[int] = None
  num_heads: int = 12

  @nn.compact
  def __call__(self, x):
    n, _, d = x.shape
    probe = self.param("probe", nn.initializers.xavier_uniform(), (1, 1, d), x.dtype)
    x = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform()
    )(jnp.tile(probe, [n, 1, 1]), x)
    x = x + MlpBlock(mlp_dim=self.mlp_dim)(nn.LayerNorm()(x))
    return x[:, 0]


POOL_TYPES = ("gap", "map", "tok")


class ViT(nn.Module):
  """Image tower: f32[B, S, S, 3] in [-1, 1] -> (f32[B, num_classes or width], dict)."""

  num_classes: Optional[int] = None
  patch_size: Sequence[int] = (16, 16)
  width: int = 768
  depth: int = 12
  mlp_dim: Optional[int] = None
  num_heads: int = 12
  posemb: str = "learn"
  pool_type: str = "gap"
  remat_policy: Optional[str] = None
  # big_vision zero-inits classifier heads; a zero embedding head would make every image embedding
  # zero at init, so the contrastive towers default to a random head.
  head_zeroinit: bool = False

  @nn.compact
  def __call__(self, image, *, train=False):
    del train  # No dropout: kept for big_vision's call signature.
    out = {}
    x = nn.Conv(
        self.width,
        tuple(self.patch_size),
        strides=tuple(self.patch_size),
        padding="VALID",
        name="embedding",
    )(image)
    n, h, w, c = x.shape
    x = jnp.reshape(x, [n, h * w, c])
    if self.posemb == "learn":
      x = x + self.param(
          "pos_embedding", nn.initializers.normal(stddev=1 / np.sqrt(c)), (1, h * w, c), x.dtype
      )
    elif self.posemb == "sincos2d":
      x = x + posemb_sincos_2d(h, w, c)
    else:
      raise ValueError(f"unknown posemb {self.posemb!r}; use 'learn' or 'sincos2d'")
    if self.pool_type == "tok":
      cls = self.param("cls", nn.initializers.zeros, (1, 1, c), x.dtype)
      x = jnp.concatenate([jnp.tile(cls, [n, 1, 1]), x], axis=1)
    x = out["encoded"] = Encoder(
        depth=self.depth,
        mlp_dim=self.mlp_dim,
        num_heads=self.num_heads,
        remat_policy=self.remat_policy,
        name="Transformer",
    )(x)
    if self.pool_type == "map":
      x = MAPHead(num_heads=self.num_heads, mlp_dim=self.mlp_dim)(x)
    elif self.pool_type == "gap":
      x = jnp.mean(x, axis=1)
    elif self.pool_type == "tok":
      x = x[:, 0]
    else:
      raise ValueError(f"unknown pool_type {self.pool_type!r}; use one of {POOL_TYPES}")
    out["pre_logits"] = x
    if self.num_classes:
      kw = {"kernel_init": nn.initializers.zeros} if self.head_zeroinit else {}
      x = out["logits"] = nn.Dense(self.num_classes, name="head", **kw)(x)
    return x, out
