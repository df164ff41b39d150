"""Containers for paired image-text data, shared by every reader and the loop.

ColorSwap-style splits lay groups out as consecutive pairs: pairs (2g, 2g+1) are group g's
(image_1, caption_1) and (image_2, caption_2), where caption_2 / image_2 swap the two colors.
"""
import dataclasses

import numpy as np


class DataError(ValueError):
  """Bad or missing data: the message names the file / record and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Pairs:
  """N aligned (image, caption) pairs; the alignment is the index.

  Attributes:
    images: uint8[N, S, S, 3], already resized to the model's image size S.
    texts: tuple of N captions; texts[i] is the caption paired with images[i].
  """
  images: np.ndarray
  texts: tuple[str, ...]

  def __post_init__(self):
    images = self.images
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
        or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
      raise DataError(
          f"Pairs.images must be uint8[N, S, S, 3], got "
          f"{getattr(images, 'dtype', type(images).__name__)}{list(getattr(images, 'shape', []))};"
          " resize and convert to square RGB uint8 first")
    if not isinstance(self.texts, tuple) or not all(isinstance(t, str) for t in self.texts):
      raise DataError("Pairs.texts must be a tuple of str; pass tuple(captions)")
    if len(self.texts) != len(images):
      raise DataError(
          f"Pairs has {len(images)} images but {len(self.texts)} texts; each image needs exactly"
          " one caption at the same index")

  def __len__(self) -> int:
    return len(self.texts)

  @property
  def image_size(self) -> int:
    return int(self.images.shape[1])

  def take(self, idx) -> "Pairs":
    """The pairs at integer indices `idx` (any int array-like), in that order."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    return Pairs(images=self.images[idx], texts=tuple(self.texts[i] for i in idx))


@dataclasses.dataclass(frozen=True)
class ColorSwapGroups(Pairs):
  """Pairs whose consecutive pairs (2g, 2g+1) form ColorSwap group g (their captions swap two
  colors): a test split of this type is scored by group (text, image, group, GroupMatch); a plain
  `Pairs` test split by retrieval recall@1."""

  def __post_init__(self):
    super().__post_init__()
    if len(self) % 2:
      raise DataError(
          f"ColorSwapGroups has {len(self)} pairs, an odd number; groups are consecutive pairs"
          " (2g, 2g+1), so every group needs both of its pairs")

  @classmethod
  def of(cls, pairs: Pairs) -> "ColorSwapGroups":
    return cls(images=pairs.images, texts=pairs.texts)


@dataclasses.dataclass(frozen=True)
class ColorSwapSplits:
  """ColorSwap-style train pool and test split, groups as consecutive pairs (2g, 2g+1)."""
  train: Pairs
  test: Pairs

  def __post_init__(self):
    for name, split in (("train", self.train), ("test", self.test)):
      if len(split) % 2:
        raise DataError(
            f"ColorSwapSplits.{name} has {len(split)} pairs, an odd number; groups are consecutive"
            " pairs (2g, 2g+1), so every group needs both of its pairs")


def config_get(cfg, key, default=None):
  """cfg[key] or `default`, for the ConfigDicts, dicts and attribute objects data configs come as."""
  return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
