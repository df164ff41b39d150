"""Trains the committed starting checkpoint of the embedded default, from scratch, on CPU.

  python -m experiments.pretrain_synthetic            # rewrites mmal_jax/assets/pretrained_tiny.*

The pretraining corpus (`synthetic.pretraining_corpus`) teaches colors, shapes and the caption
templates but never which color goes with which shape in a two-color scene, so the checkpoint starts
the active-learning loop well below ceiling on the ColorSwap-like test groups. Writes, atomically:
  pretrained_tiny.npz        big_vision two-tower params (SigLIP layout: img, txt, t, b)
  pretrained_tiny_vocab.txt  the word vocabulary it was trained with (ids 3.., one word a line)
  pretrained_tiny.json       the model config, the training settings and the pretrained test scores
About 1,250 steps of a ~64k-parameter model: a few minutes on 2 CPU cores (4.6 minutes measured
while the 2 cores were shared with four other jobs, load average ~9).
"""
import json
import os
import time

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from mmal_jax import embeddings
from mmal_jax import evaluation
from mmal_jax import files
from mmal_jax import models
from mmal_jax.data import preprocess
from mmal_jax.data import synthetic
from mmal_jax.models import npz
from mmal_jax.training import train

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mmal_jax", "assets")

_OUT_DIR = flags.DEFINE_string("out_dir", ASSETS, "Where pretrained_tiny.{npz,json} and the vocab go.")
_NUM_PAIRS = flags.DEFINE_integer("num_pairs", 20000, "Size of the pretraining corpus.")
_EPOCHS = flags.DEFINE_integer("epochs", 8, "Passes over the corpus.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Pairs per step.")
_LR = flags.DEFINE_float("learning_rate", 2e-3, "Peak AdamW learning rate (warmup + cosine).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the corpus, the initialization and the shuffling.")


def model_config() -> ml_collections.ConfigDict:
  """The checkpoint's architecture: mmal_jax/defaults.py's `model()` must match it to load the file.

  nano towers widened to two blocks (width 32) with 8x8 patches: deep enough to learn color-shape
  binding from part of the ColorSwap-like pool (one block learns it much more slowly), small enough
  to pretrain in minutes and fine-tune every round on CPU.
  """
  return ml_collections.ConfigDict(dict(
      image_size=32,
      image=dict(variant="nano/8", depth=2, pool_type="gap", posemb="learn"),
      text=dict(variant="nano", depth=2, vocab_size=64, max_len=16, pool_type="last"),
      out_dim=64, temperature_init=10.0, bias_init=-10.0,
      tokenizer=dict(kind="word"), loss="sigmoid"))


def main(argv):
  del argv
  out_dir = _OUT_DIR.value
  os.makedirs(out_dir, exist_ok=True)
  if not os.access(out_dir, os.W_OK):
    raise ValueError(f"--out_dir={out_dir} is not writable; pass a writable directory")
  mc = model_config()
  prep = preprocess.Preprocessor.from_config(mc)
  train_config = ml_collections.ConfigDict(dict(
      epochs=_EPOCHS.value, batch_size=_BATCH.value, learning_rate=_LR.value, weight_decay=0.1,
      warmup_fraction=0.05, grad_clip=1.0))

  start = time.perf_counter()
  corpus = synthetic.pretraining_corpus(seed=_SEED.value, num_pairs=_NUM_PAIRS.value,
                                        image_size=mc.image_size)
  test = synthetic.colorswap_like(seed=0, image_size=mc.image_size).test
  data_seconds = time.perf_counter() - start

  model = models.get_model(mc)
  key_init, key_fit = jax.random.split(jax.random.PRNGKey(_SEED.value))
  init = models.init_params(model, mc, key_init)
  start = time.perf_counter()
  params, info = train.fit(model, init, prep.images(corpus.images), prep.texts(corpus.texts),
                           train_config, key=key_fit, loss=mc.loss)
  params = jax.device_get(params)
  train_seconds = time.perf_counter() - start

  zimg = embeddings.embed_images(model, params, prep.images(test.images))
  ztxt = embeddings.embed_texts(model, params, prep.texts(test.texts))
  scores = evaluation.colorswap_scores(evaluation.colorswap_similarity(zimg, ztxt))
  scores = {k: float(v) for k, v in scores.items()}

  npz.save_big_vision_npz(params, os.path.join(out_dir, "pretrained_tiny.npz"))
  files.write_text(os.path.join(out_dir, "pretrained_tiny_vocab.txt"),
                "\n".join(preprocess.embedded_vocabulary()) + "\n")
  meta = dict(model=mc.to_dict(), train=train_config.to_dict(), num_pairs=_NUM_PAIRS.value,
              seed=_SEED.value, steps=len(info["loss"]),
              final_loss=float(np.mean(info["loss"][-info["steps_per_epoch"]:])),
              pretrained_test_scores=scores,
              seconds=dict(data=round(data_seconds, 1), train=round(train_seconds, 1)),
              num_params=int(sum(np.size(x) for x in jax.tree.leaves(params))))
  files.write_text(os.path.join(out_dir, "pretrained_tiny.json"), json.dumps(meta, indent=2) + "\n")
  print(f"steps {meta['steps']}  last-epoch loss {meta['final_loss']:.3f}  data {data_seconds:.0f}s"
        f"  train {train_seconds:.0f}s  params {meta['num_params']}")
  print("pretrained test scores: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
  app.run(main)
