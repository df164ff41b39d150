"""big_vision `.npz` checkpoints: one array per parameter, keys joined with "/".

Released big_vision checkpoints (e.g. SigLIP's) prefix every key with "params/"
("params/img/Transformer/encoderblock_0/LayerNorm_0/scale"); we write that prefix and read files
with or without it.
"""

import os
import zipfile
from typing import Any, Mapping

import jax
import numpy as np

from mmal_jax import files

PREFIX = "params/"


class CheckpointError(ValueError):
  """A checkpoint file is missing, unreadable, or does not match the model."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict:
  """{"a": {"b": x}} -> {"a/b": x}."""
  flat = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      flat.update(flatten(v, f"{prefix}{k}/"))
    else:
      flat[f"{prefix}{k}"] = v
  return flat


def unflatten(flat: Mapping[str, Any]) -> dict:
  """{"a/b": x} -> {"a": {"b": x}}."""
  tree = {}
  for key, v in flat.items():
    *parents, leaf = key.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


def save_big_vision_npz(params: Mapping[str, Any], path: str) -> None:
  """Writes params as big_vision does (keys "params/<a>/<b>"), atomically: no partial file."""
  flat = {PREFIX + k: np.asarray(jax.device_get(v)) for k, v in flatten(params).items()}
  with files.atomic_write(path) as f:
    np.savez(f, **flat)


def load_big_vision_npz(path: str) -> dict:
  """Reads a big_vision `.npz` into a nested dict of np.ndarray (the "params/" prefix dropped)."""
  if not os.path.isfile(path):
    raise CheckpointError(f"checkpoint {path!r} does not exist; check the path (model.init)")
  try:
    with np.load(path, allow_pickle=False) as data:
      flat = {k: data[k] for k in data.files}
  except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
    raise CheckpointError(
        f"checkpoint {path!r} is not a readable .npz (truncated or corrupt:"
        f" {type(e).__name__}: {e}); re-copy or re-save it"
    ) from None
  if not flat:
    raise CheckpointError(f"checkpoint {path!r} holds no arrays; re-save it")
  if all(k.startswith(PREFIX) for k in flat):
    flat = {k[len(PREFIX) :]: v for k, v in flat.items()}
  return unflatten(flat)


def check_matches(
    flat: Mapping[str, Any], flat_expected: Mapping[str, Any], path: str, what: str = ""
) -> None:
  """Raises one CheckpointError listing every missing, unexpected and mis-shaped key."""
  missing = sorted(set(flat_expected) - set(flat))
  unexpected = sorted(set(flat) - set(flat_expected))
  shapes = sorted(
      f"{k} {tuple(np.shape(flat[k]))} vs {tuple(np.shape(flat_expected[k]))}"
      for k in set(flat) & set(flat_expected)
      if np.shape(flat[k]) != np.shape(flat_expected[k])
  )
  if missing or unexpected or shapes:
    parts = [
        f"{name} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
        for name, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape checkpoint vs model", shapes),
        )
        if keys
    ]
    raise CheckpointError(
        f"checkpoint {path!r} does not match the model config{what}: "
        + "; ".join(parts)
        + "; fix the config's sizes or use a matching"
        " checkpoint"
    )
