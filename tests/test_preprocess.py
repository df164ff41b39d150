"""Preprocessor.from_config: value range, resizing, tokenization, and the embedded vocabulary."""

import os

import ml_collections
import numpy as np
import pytest

from mmal_jax.data import DataError
from mmal_jax.data import synthetic
from mmal_jax.pp import preprocess

ASSETS = os.path.join(os.path.dirname(preprocess.__file__), os.pardir, "assets")
VOCAB = os.path.join(ASSETS, "pretrained_tiny_vocab.txt")  # the default config's vocab_path


def _config(**tokenizer):
  tokenizer = tokenizer or dict(vocab_path=VOCAB)
  return ml_collections.ConfigDict(
      dict(
          image_size=8,
          text=dict(vocab_size=64, max_len=6),
          tokenizer=dict(kind="word", **tokenizer),
      )
  )


def test_images_map_uint8_to_minus_one_one():
  prep = preprocess.Preprocessor.from_config(_config())
  images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
  images[0, 0, 0] = (0, 128, 255)
  out = prep.images(images)
  assert out.dtype == np.float32 and out.shape == (3, 8, 8, 3)
  np.testing.assert_allclose(out, images.astype(np.float64) / 127.5 - 1.0, atol=1e-6)
  np.testing.assert_allclose(out[0, 0, 0], [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)


def test_images_of_another_size_are_resized():
  prep = preprocess.Preprocessor.from_config(_config())
  # A constant image stays constant under any interpolation; a left/right split stays split.
  images = np.zeros((2, 16, 16, 3), np.uint8)
  images[0] = 200
  images[1, :, 8:] = 255
  out = prep.images(images)
  assert out.shape == (2, 8, 8, 3)
  np.testing.assert_allclose(out[0], 200 / 127.5 - 1, atol=1e-6)
  assert (out[1, :, :3] == -1).all() and (out[1, :, 5:] == 1).all()


def test_embedded_word_tokenizer_ids():
  prep = preprocess.Preprocessor.from_config(_config())
  words = synthetic.vocabulary()
  tokens = prep.texts(["a red circle", "the square is blue and the cross is white"])
  assert tokens.dtype == np.int32 and tokens.shape == (2, 6)
  # Ids: 0 pad, 1 eos, 2 unk, then the sorted vocabulary; EOS padded, "sticky" when cut.
  ids = {w: i + 3 for i, w in enumerate(words)}
  np.testing.assert_array_equal(tokens[0], [ids["a"], ids["red"], ids["circle"], 1, 1, 1])
  np.testing.assert_array_equal(
      tokens[1], [ids["the"], ids["square"], ids["is"], ids["blue"], ids["and"], 1]
  )


def test_explicit_word_lists_and_files(tmp_path):
  prep = preprocess.Preprocessor.from_config(_config(words=["cat", "dog"]))
  np.testing.assert_array_equal(prep.texts(["dog cat bird"]), [[4, 3, 2, 1, 1, 1]])
  path = tmp_path / "vocab.txt"
  path.write_text("dog\ncat\n")
  prep = preprocess.Preprocessor.from_config(_config(vocab_path=str(path)))
  np.testing.assert_array_equal(prep.texts(["dog cat"]), [[3, 4, 1, 1, 1, 1]])
  path.write_text("dog\n\ncat\n")
  with pytest.raises(DataError, match="blank line"):
    preprocess.Preprocessor.from_config(_config(vocab_path=str(path)))


def test_committed_vocabulary_matches_the_generator():
  """The checkpoint was trained with the vocabulary file next to it: both must agree."""
  with open(VOCAB, encoding="utf-8") as f:
    assert tuple(f.read().splitlines()) == synthetic.vocabulary()


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(tokenizer=dict(kind="bpe")), "tokenizer.kind"),
        (dict(tokenizer=dict(kind="sentencepiece")), "tokenizer.path"),
        (dict(tokenizer=dict(kind="sentencepiece", path="/nonexistent.model")), "does not exist"),
        (dict(tokenizer=dict(kind="word", vocab_path="/nonexistent.txt")), "does not exist"),
        (dict(text=dict(vocab_size=10, max_len=6)), "vocab_size"),
        (dict(image_size=0), "image_size"),
        (dict(text=dict(vocab_size=64, max_len=0)), "max_len"),
    ],
)
def test_bad_configs_raise_one_clear_error(change, match):
  config = _config()
  config.update(change)
  with pytest.raises(DataError, match=match):
    preprocess.Preprocessor.from_config(config)


def test_word_tokenizer_without_a_word_list_says_which_field():
  """pp/ reads no dataset: a word tokenizer needs its list (the default config names the file)."""
  config = _config()
  config.tokenizer = dict(kind="word")
  with pytest.raises(DataError, match="needs model.tokenizer.vocab_path"):
    preprocess.Preprocessor.from_config(config)


def test_bad_images_raise():
  prep = preprocess.Preprocessor.from_config(_config())
  with pytest.raises(DataError, match="uint8"):
    prep.images(np.zeros((2, 8, 8, 3), np.float32))
