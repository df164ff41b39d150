"""Containers for paired image-text data, shared by every reader and the loop, and the reader
contract.

ColorSwap-style splits lay groups out as consecutive pairs: pairs (2g, 2g+1) are group g's
(image_1, caption_1) and (image_2, caption_2), where caption_2 / image_2 swap the two colors.

The reader contract: a random-access `Source` (`__len__`, `images(ids)`, `texts(ids)`), which the
loop reads pool items through (`InMemory` wraps a `Pairs`; `coco.Source` reads files on demand),
and `Shards`, the sequential form for data that can only be read in order (webdataset tar
shards): an iterable of `Pairs` blocks.
"""

import dataclasses
from typing import Iterator, Protocol, Sequence

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
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != 3
        or images.shape[1] != images.shape[2]
    ):
      raise DataError(
          f"Pairs.images must be uint8[N, S, S, 3], got "
          f"{getattr(images, 'dtype', type(images).__name__)}{list(getattr(images, 'shape', []))};"
          " resize and convert to square RGB uint8 first"
      )
    if not isinstance(self.texts, tuple) or not all(isinstance(t, str) for t in self.texts):
      raise DataError("Pairs.texts must be a tuple of str; pass tuple(captions)")
    if len(self.texts) != len(images):
      raise DataError(
          f"Pairs has {len(images)} images but {len(self.texts)} texts; each image needs exactly"
          " one caption at the same index"
      )

  def __len__(self) -> int:
    return len(self.texts)

  @property
  def image_size(self) -> int:
    return int(self.images.shape[1])

  def take(self, idx) -> "Pairs":
    """The pairs at integer indices `idx` (any int array-like), in that order."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    return Pairs(images=self.images[idx], texts=tuple(self.texts[i] for i in idx))


class Source(Protocol):
  """Random-access paired data: N (image, caption) pairs, read by id."""

  def __len__(self) -> int:
    ...

  def images(self, ids: Sequence[int]) -> np.ndarray:
    """uint8[len(ids), S, S, 3], the images of pairs `ids`, in that order."""
    ...

  def texts(self, ids: Sequence[int]) -> list[str]:
    """The captions of pairs `ids`, in that order."""
    ...


class Shards(Protocol):
  """Paired data readable only in order: iterating yields `Pairs` blocks (e.g. one per shard);
  the number of pairs need not be known up front."""

  def __iter__(self) -> Iterator["Pairs"]:
    ...


@dataclasses.dataclass(frozen=True)
class InMemory:
  """A `Pairs` as a `Source`."""

  pairs: "Pairs"

  def __len__(self) -> int:
    return len(self.pairs)

  def images(self, ids) -> np.ndarray:
    return self.pairs.images[np.asarray(ids, np.int64)]

  def texts(self, ids) -> list[str]:
    return [self.pairs.texts[i] for i in np.asarray(ids, np.int64).tolist()]


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
          " (2g, 2g+1), so every group needs both of its pairs"
      )

  @classmethod
  def of(cls, pairs: Pairs) -> "ColorSwapGroups":
    return cls(images=pairs.images, texts=pairs.texts)


@dataclasses.dataclass(frozen=True)
class LabeledPairs(Pairs):
  """Pairs whose images carry class labels (a stream's held-out split): scored by recall@1 and by
  zero-shot classification of each attribute (evaluation.zero_shot).

  Attributes:
    labels: {attribute: bool[N, C]}, which of the attribute's C classes image i shows.
    prompts: {attribute: C tuples of str}, the texts naming each class (averaged as an ensemble).
  """

  labels: dict = dataclasses.field(default_factory=dict)
  prompts: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    super().__post_init__()
    for attribute, present in self.labels.items():
      classes = len(self.prompts.get(attribute, ()))
      if present.shape != (len(self), classes) or not all(self.prompts[attribute]):
        raise DataError(
            f"LabeledPairs attribute {attribute!r}: labels {present.shape} need shape "
            f"({len(self)}, {classes}) and every class at least one prompt"
        )


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
            " pairs (2g, 2g+1), so every group needs both of its pairs"
        )


def config_get(cfg, key, default=None):
  """cfg[key] or `default`, for the ConfigDicts, dicts and attribute objects data configs come as."""
  return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
