"""Tokenizers: text -> int32[N, max_len] ids, laid out as big_vision's SigLIP preprocessing
(`tokenize(max_len, eos="sticky", pad_value=EOS)`): ids, then EOS, padded with EOS, and when a
caption is too long it is cut to max_len - 1 ids and EOS is kept as the last token. The text
tower pools the last position, so it always reads an EOS that has attended to the whole caption.
"""

import os
import re
from typing import Iterable, Optional, Sequence

import numpy as np

EOS_MODES = ("sticky", "yes", "none")


def _pack(
    ids: Sequence[Sequence[int]], max_len: int, eos_id: int, pad_id: int, eos: str
) -> np.ndarray:
  """Lists of ids -> int32[N, max_len] with the EOS policy `eos` (see EOS_MODES)."""
  out = np.full((len(ids), max_len), pad_id, np.int32)
  for i, seq in enumerate(ids):
    seq = list(seq)
    if eos == "sticky":
      seq = seq[: max_len - 1] + [eos_id]
    elif eos == "yes":
      seq = (seq + [eos_id])[:max_len]
    else:
      seq = seq[:max_len]
    out[i, : len(seq)] = seq
  return out


def _check_texts(texts) -> list:
  if isinstance(texts, str):
    raise ValueError("tokenizers take a sequence of strings; got one str (wrap it in a list)")
  texts = list(texts)
  bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
  if bad:
    raise ValueError(f"text {bad[0]} is a {type(texts[bad[0]]).__name__}, not a str")
  return texts


class WordTokenizer:
  """Lower-cased words of [a-z0-9]+ looked up in a fixed vocabulary.

  Ids: 0 = <pad>, 1 = <eos>, 2 = <unk>, then `words` in order (ids 3..). vocab_size = len(words) + 3.
  """

  PAD, EOS, UNK = 0, 1, 2
  RESERVED = ("<pad>", "<eos>", "<unk>")
  _WORD = re.compile(r"[a-z0-9]+")

  def __init__(
      self,
      words: Sequence[str],
      max_len: int,
      *,
      eos: str = "sticky",
      pad_value: Optional[int] = None,
  ):
    words = list(words)
    if max_len < 1:
      raise ValueError(f"max_len must be >= 1; got {max_len}")
    if eos not in EOS_MODES:
      raise ValueError(f"eos={eos!r} is not known; use one of {EOS_MODES}")
    if len(set(words)) != len(words) or set(words) & set(self.RESERVED):
      raise ValueError(
          "tokenizer words must be unique and not reserved ('<pad>', '<eos>', '<unk>')"
      )
    self.words, self.max_len, self.eos = tuple(words), int(max_len), eos
    self.pad_value = self.EOS if pad_value is None else int(pad_value)
    self._ids = {w: i + len(self.RESERVED) for i, w in enumerate(words)}

  @classmethod
  def split(cls, text: str) -> list:
    return cls._WORD.findall(text.lower())

  @classmethod
  def from_texts(
      cls, texts: Iterable[str], max_len: int, *, min_count: int = 1, **kw
  ) -> "WordTokenizer":
    """Vocabulary of every word seen at least min_count times, most frequent first (ties: a-z)."""
    counts = {}
    for t in _check_texts(texts):
      for w in cls.split(t):
        counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return cls(words, max_len, **kw)

  @property
  def vocab_size(self) -> int:
    return len(self.words) + len(self.RESERVED)

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Sequence of N str -> int32[N, max_len]."""
    ids = [[self._ids.get(w, self.UNK) for w in self.split(t)] for t in _check_texts(texts)]
    return _pack(ids, self.max_len, self.EOS, self.pad_value, self.eos)


class SentencePieceTokenizer:
  """A sentencepiece model file (e.g. big_vision's SigLIP vocabularies), packed as SigLIP does."""

  def __init__(
      self, model_path: str, max_len: int, *, eos: str = "sticky", pad_value: Optional[int] = None
  ):
    import sentencepiece  # pylint: disable=import-outside-toplevel

    if not os.path.isfile(model_path):
      raise ValueError(
          f"sentencepiece model {model_path!r} does not exist; set"
          " model.tokenizer.path to a .model file"
      )
    if max_len < 1:
      raise ValueError(f"max_len must be >= 1; got {max_len}")
    if eos not in EOS_MODES:
      raise ValueError(f"eos={eos!r} is not known; use one of {EOS_MODES}")
    self.sp = sentencepiece.SentencePieceProcessor()
    try:
      self.sp.Load(model_path)
    except (OSError, RuntimeError) as e:
      raise ValueError(
          f"sentencepiece model {model_path!r} cannot be read ({e}); use a valid" " .model file"
      ) from None
    if self.sp.eos_id() < 0 and eos != "none":
      raise ValueError(f"sentencepiece model {model_path!r} has no EOS piece; use eos='none'")
    self.max_len, self.eos = int(max_len), eos
    self.pad_value = (
        (self.sp.eos_id() if eos != "none" else max(self.sp.pad_id(), 0))
        if pad_value is None
        else int(pad_value)
    )

  @property
  def vocab_size(self) -> int:
    return self.sp.GetPieceSize()

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Sequence of N str -> int32[N, max_len]."""
    ids = self.sp.Encode(_check_texts(texts), out_type=int)
    return _pack(ids, self.max_len, self.sp.eos_id(), self.pad_value, self.eos)
