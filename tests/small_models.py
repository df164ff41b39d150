"""Small models shared by the tests: a two-tower config (model, checkpoint and training tests), the
training config those tests train it with, and a SentencePiece model trained on a few captions
(tokenizer and README tests)."""

import ml_collections


def small_config(**kw):
  """mu-sized towers at 16x16 images and 6 tokens: every compile stays cheap."""
  cfg = dict(
      image_size=16,
      image=dict(variant="mu/8", pool_type="map"),
      text=dict(variant="mu", vocab_size=50, max_len=6),
      out_dim=16,
      temperature_init=10.0,
      bias_init=-10.0,
      loss="sigmoid",
  )
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)


def train_config(**kw):
  """2 epochs of batch 12. weight_decay and grad_clip are static arguments of train_step: every
  test uses the same ones so that they share compiled steps."""
  cfg = dict(
      epochs=2,
      batch_size=12,
      learning_rate=1e-2,
      weight_decay=1.0,
      warmup_fraction=0.2,
      grad_clip=0.5,
  )
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)


def train_sentencepiece(directory):
  """Trains a 40-piece unigram SentencePiece model in `directory` (a pathlib.Path); returns the
  path of its .model file. Ids as in big_vision's c4_en vocabulary: pad=0, eos=1, unk=2."""
  import sentencepiece  # pylint: disable=g-import-not-at-top  # only the tests that need it

  lines = [
      "a red cube to the left of a blue ball",
      "a blue cube to the left of a red ball",
      "the green circle is above the yellow square",
      "two small dogs play on the grass",
      "a cat sleeps next to a red chair",
  ] * 4
  (directory / "corpus.txt").write_text("\n".join(lines) + "\n")
  sentencepiece.SentencePieceTrainer.train(
      input=str(directory / "corpus.txt"),
      model_prefix=str(directory / "sp"),
      vocab_size=40,
      model_type="unigram",
      pad_id=0,
      eos_id=1,
      unk_id=2,
      bos_id=-1,
      minloglevel=2,
  )
  return str(directory / "sp.model")
