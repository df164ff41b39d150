"""Word and sentencepiece tokenizers: ids, sticky EOS, padding, and clear errors."""

import numpy as np
import pytest
import sentencepiece

from mmal_jax.pp import tokenizers
import small_models


def test_word_tokenizer_ids_by_hand():
  tok = tokenizers.WordTokenizer(["red", "cube", "a", "blue"], max_len=5)
  assert tok.vocab_size == 7
  got = tok(["A red cube.", "a BLUE cube, a red", "green"])
  # <pad>=0 <eos>=1 <unk>=2, then red=3 cube=4 a=5 blue=6; sticky EOS, padded with EOS.
  np.testing.assert_array_equal(
      got, [[5, 3, 4, 1, 1], [5, 6, 4, 5, 1], [2, 1, 1, 1, 1]]  # cut to max_len - 1 words + EOS
  )
  assert got.dtype == np.int32
  no_eos = tokenizers.WordTokenizer(["red"], max_len=3, eos="none", pad_value=0)
  np.testing.assert_array_equal(no_eos(["red red red red"]), [[3, 3, 3]])
  np.testing.assert_array_equal(no_eos(["red"]), [[3, 0, 0]])


def test_word_tokenizer_from_texts_orders_by_count():
  tok = tokenizers.WordTokenizer.from_texts(["b a", "a c", "a b"], max_len=4)
  assert tok.words == ("a", "b", "c")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tokenizers.WordTokenizer(["a", "a"], 4), "unique"),
        (lambda: tokenizers.WordTokenizer(["a"], 0), "max_len"),
        (lambda: tokenizers.WordTokenizer(["a"], 4, eos="maybe"), "eos"),
        (lambda: tokenizers.WordTokenizer(["a"], 4)("a b"), "sequence of strings"),
        (lambda: tokenizers.SentencePieceTokenizer("/nonexistent/sp.model", 8), "does not exist"),
    ],
)
def test_bad_arguments_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
  return small_models.train_sentencepiece(tmp_path_factory.mktemp("sp"))


def test_sentencepiece_matches_processor_with_sticky_eos(sp_model):
  tok = tokenizers.SentencePieceTokenizer(sp_model, max_len=6)
  sp = sentencepiece.SentencePieceProcessor(model_file=sp_model)
  assert tok.vocab_size == sp.get_piece_size() == 40
  texts = ["a red cube", "the green circle is above the yellow square"]
  got = tok(texts)
  for row, text in zip(got, texts):
    ids = sp.encode(text)
    want = (ids[:5] + [1] + [1] * 6)[:6]
    np.testing.assert_array_equal(row, want)
  assert len(sp.encode(texts[1])) > 6  # The second caption was cut: its last id is still EOS.
  corrupt = sp_model + ".bad"
  with open(corrupt, "wb") as f:
    f.write(b"not a model")
  with pytest.raises(ValueError, match="cannot be read"):
    tokenizers.SentencePieceTokenizer(corrupt, max_len=6)
