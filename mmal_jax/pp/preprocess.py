"""Image and text preprocessing for one model, built from the model config in one place.

model_config fields read here:
  image_size: S, the side the image tower takes.
  text.max_len: L, tokens per caption; text.vocab_size: the tower's embedding rows (the tokenizer's
    ids must fit in it).
  tokenizer: dict(kind="word", words=[...] or vocab_path=".txt" (one word a line; the default
    config points at the bundled checkpoint's, mmal_jax/assets/pretrained_tiny_vocab.txt)), or
    dict(kind="sentencepiece", path=".model"); optional eos ("sticky" as SigLIP, "yes", "none").
Images become f32 in [-1, 1] (big_vision's `value_range(-1, 1)`), resized bilinearly to S x S first
when they arrive at another size.
"""

import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np

from mmal_jax.data.images import resize_images
from mmal_jax.data.pairs import DataError, config_get
from mmal_jax.pp import tokenizers

TOKENIZER_KINDS = ("word", "sentencepiece")


def read_vocab(path: str) -> tuple[str, ...]:
  """One word a line; blank lines are not allowed (they would shift every later id)."""
  if not os.path.isfile(path):
    raise DataError(
        f"word vocabulary {path!r} does not exist; set model.tokenizer.vocab_path to a"
        " text file with one word a line"
    )
  with open(path, encoding="utf-8") as f:
    words = f.read().splitlines()
  blank = [i + 1 for i, w in enumerate(words) if not w.strip()]
  if blank or not words:
    raise DataError(
        f"word vocabulary {path!r} has a blank line ({blank[:1] or 'empty file'}); write"
        " exactly one word per line"
    )
  return tuple(w.strip() for w in words)


def make_tokenizer(tokenizer_config, max_len: int):
  """A tokenizers.WordTokenizer or SentencePieceTokenizer for `tokenizer_config` (see module doc)."""
  kind = config_get(tokenizer_config, "kind")
  eos = config_get(tokenizer_config, "eos", "sticky")
  if kind == "word":
    words, path = config_get(tokenizer_config, "words"), config_get(tokenizer_config, "vocab_path")
    if words is not None and path is not None:
      raise DataError("model.tokenizer sets both words and vocab_path; keep one of them")
    if words is None and not path:
      raise DataError(
          "model.tokenizer.kind='word' needs model.tokenizer.vocab_path (one word a line; the"
          " bundled checkpoint's is mmal_jax/assets/pretrained_tiny_vocab.txt) or words=[...]"
      )
    words = tuple(words) if words is not None else read_vocab(path)
    make = lambda: tokenizers.WordTokenizer(words, max_len, eos=eos)  # pylint: disable=unnecessary-lambda-assignment
  elif kind == "sentencepiece":
    path = config_get(tokenizer_config, "path")
    if not path:
      raise DataError(
          "model.tokenizer.kind='sentencepiece' needs model.tokenizer.path (a .model file)"
      )
    make = lambda: tokenizers.SentencePieceTokenizer(path, max_len, eos=eos)  # pylint: disable=unnecessary-lambda-assignment
  else:
    raise DataError(f"model.tokenizer.kind={kind!r} is not known; use one of {TOKENIZER_KINDS}")
  try:
    return make()
  except ValueError as e:
    raise DataError(f"model.tokenizer: {e}") from None


@dataclasses.dataclass(frozen=True)
class Preprocessor:
  """Turns stored pairs into model inputs.

  images(uint8[N, H, W, 3]) -> f32[N, S, S, 3] in [-1, 1]; texts(Sequence[str]) -> int32[N, L].
  """

  image_size: int
  max_len: int
  tokenizer: Callable[[Sequence[str]], np.ndarray]

  @classmethod
  def from_config(cls, model_config: Any) -> "Preprocessor":
    image_size = config_get(model_config, "image_size")
    text = config_get(model_config, "text") or {}
    max_len, vocab_size = config_get(text, "max_len"), config_get(text, "vocab_size")
    if not isinstance(image_size, int) or image_size < 1:
      raise DataError(
          f"model.image_size={image_size!r} must be a positive int (the image tower's side)"
      )
    if not isinstance(max_len, int) or max_len < 1:
      raise DataError(f"model.text.max_len={max_len!r} must be a positive int (tokens per caption)")
    tokenizer_config = config_get(model_config, "tokenizer")
    if tokenizer_config is None:
      raise DataError("model.tokenizer is missing; set e.g. model.tokenizer=dict(kind='word')")
    tokenizer = make_tokenizer(tokenizer_config, max_len)
    if vocab_size is not None and tokenizer.vocab_size > vocab_size:
      raise DataError(
          f"the tokenizer has {tokenizer.vocab_size} ids but model.text.vocab_size="
          f"{vocab_size}; raise model.text.vocab_size to at least {tokenizer.vocab_size}"
      )
    return cls(image_size=image_size, max_len=max_len, tokenizer=tokenizer)

  def images(self, images: np.ndarray) -> np.ndarray:
    """uint8[N, H, W, 3] -> f32[N, S, S, 3] in [-1, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      raise DataError(
          f"Preprocessor.images needs uint8[N, H, W, 3]; got {images.dtype}" f"{list(images.shape)}"
      )
    images = resize_images(images, self.image_size)
    return images.astype(np.float32) * np.float32(2 / 255) - np.float32(1)

  def texts(self, texts: Sequence[str]) -> np.ndarray:
    """Sequence of N captions -> int32[N, max_len] token ids."""
    return self.tokenizer(texts)
