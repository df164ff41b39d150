"""L2-normalized tower embeddings of a whole array, in fixed-size jitted batches.

The tower apply is compiled once per (model, batch shape): every batch, the last one included, is
padded to batch_size, which is rounded up to a multiple of the mesh's device count so that the
batch can be sharded over its "data" axis (data parallel, params replicated). The mesh comes from
the caller (`experiment.setup` builds one from the config); without one, all local devices.
"""

import functools
import math
from typing import Optional

import jax
from jax.experimental.multihost_utils import process_allgather
import numpy as np

from mmal_jax import mesh as mesh_lib


@functools.partial(jax.jit, static_argnames=("model", "tower"))
def _embed(params: dict, x: jax.Array, *, model, tower: str) -> jax.Array:
  if tower == "image":
    return model.apply({"params": params}, x, None)[0]
  return model.apply({"params": params}, None, x)[1]


def _embed_all(model, params, x, tower, batch_size, mesh) -> np.ndarray:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}")
  mesh = mesh or mesh_lib.data_mesh()
  devices = mesh.devices.reshape(-1)
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  params = jax.device_put(params, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  batch_size = math.ceil(batch_size / len(devices)) * len(devices)
  n = len(x)
  if n == 0:  # The output width still comes from the model; nothing is compiled or run.
    spec = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    d = jax.eval_shape(functools.partial(_embed, model=model, tower=tower), params, spec).shape[1]
    return np.zeros((0, d), np.float32)
  outs = []
  for start in range(0, n, batch_size):
    chunk = x[start : start + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    outs.append(_embed(params, jax.device_put(chunk, sharded), model=model, tower=tower))
  # Multi-process, every process gets every row (the outputs span other processes' devices).
  outs = jax.device_get(outs) if jax.process_count() == 1 else process_allgather(outs, tiled=True)
  return np.concatenate([np.asarray(o, np.float32) for o in outs])[:n]


def embed_images(
    model,
    params: dict,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    mesh: Optional[jax.sharding.Mesh] = None,
) -> np.ndarray:
  """f32[N, S, S, 3] in [-1, 1] -> np.float32[N, D], rows L2-normalized; batches sharded over
  `mesh`'s "data" axis (default: all local devices)."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"embed_images needs images f32[N, S, S, 3]; got shape {images.shape}")
  return _embed_all(model, params, images.astype(np.float32), "image", batch_size, mesh)


def embed_texts(
    model,
    params: dict,
    tokens: np.ndarray,
    *,
    batch_size: int = 256,
    mesh: Optional[jax.sharding.Mesh] = None,
) -> np.ndarray:
  """int32[N, L] token ids -> np.float32[N, D], rows L2-normalized (batches sharded as above)."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"embed_texts needs int token ids [N, L]; got {tokens.dtype}{tokens.shape}")
  return _embed_all(model, params, tokens.astype(np.int32), "text", batch_size, mesh)
