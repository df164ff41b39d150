"""Is the embedded default in the paper's regime? Pretrained scores, and random 5% vs 30% of the pool.

  python -m experiments.regime_check [--config=configs/siglip_colorswap.py] [--seeds=0,1,2]

The pretrained checkpoint must sit well below ceiling on the ColorSwap-like test groups, and
training (config.train, from the checkpoint) on a uniformly random 30% of the pool must clearly
beat 5%, or active learning has nothing to show. Prints a table and writes
experiments/results/regime_check.json. Scores: ColorSwap text / image / group (ALGORITHMS.md).
The model architecture comes from the JSON that experiments/pretrain_synthetic.py writes next to
the checkpoint (config.model.init with .json for .npz), when there is one, so that the check always
runs the committed checkpoint as it was trained. The committed result came from:
  python -m experiments.regime_check --config.train.learning_rate=3e-3 --config.train.epochs=80 \
    --seeds=0,1,2,3,4
"""
import json
import os
import time

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np
from ml_collections import config_flags

from mmal_jax import embeddings
from mmal_jax import evaluation
from mmal_jax import files
from mmal_jax import models
from mmal_jax.data import load_dataset
from mmal_jax.data import preprocess
from mmal_jax.models import two_towers
from mmal_jax.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(ROOT, "configs", "siglip_colorswap.py"), "Experiment config (model, data, train).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the random subsets and of training.")
_FRACTIONS = flags.DEFINE_list("fractions", ["0.05", "0.3"], "Shares of the pool to train on.")
_OUT = flags.DEFINE_string("out", os.path.join(ROOT, "experiments", "results", "regime_check.json"),
                           "Where the JSON goes.")


def _scores(model, params, prep, test):
  zimg = embeddings.embed_images(model, params, prep.images(test.images))
  ztxt = embeddings.embed_texts(model, params, prep.texts(test.texts))
  return {k: float(v) for k, v in
          evaluation.colorswap_scores(evaluation.colorswap_similarity(zimg, ztxt)).items()}


def main(argv):
  del argv
  config = _CONFIG.value
  seeds, fractions = [int(s) for s in _SEEDS.value], [float(f) for f in _FRACTIONS.value]
  if not all(0 < f <= 1 for f in fractions):
    raise ValueError(f"--fractions={fractions} must lie in (0, 1]")
  mc = config.model
  meta_path = os.path.splitext(mc.init)[0] + ".json"
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      architecture = json.load(f)["model"]
    mc = ml_collections.ConfigDict({**mc.to_dict(), **architecture, "init": mc.init})
    config.model = mc
  prep = preprocess.Preprocessor.from_config(mc)
  model = models.get_model(mc)
  # `load` only reads the shapes and dtypes of its template: eval_shape skips compiling the init.
  shapes = jax.eval_shape(lambda k: models.init_params(model, mc, k), jax.random.PRNGKey(0))
  pretrained = jax.device_get(two_towers.load(shapes, mc.init, mc))
  pool, test = load_dataset(config.data, image_size=prep.image_size)
  pool_images, pool_tokens = prep.images(pool.images), prep.texts(pool.texts)

  rows = [dict(fraction=0.0, seed=None, num_pairs=0, **_scores(model, pretrained, prep, test))]
  for fraction in fractions:
    for seed in seeds:
      idx = np.random.default_rng(seed).permutation(len(pool))[:int(round(fraction * len(pool)))]
      start = time.perf_counter()
      params, _ = train.fit(model, pretrained, pool_images[idx], pool_tokens[idx], config.train,
                            key=jax.random.PRNGKey(seed), loss=mc.loss, lock_image=mc.lock_image)
      rows.append(dict(fraction=fraction, seed=seed, num_pairs=len(idx),
                       seconds=round(time.perf_counter() - start, 1),
                       **_scores(model, jax.device_get(params), prep, test)))

  summary = {}
  print(f"{'pool share':>10} {'pairs':>6} {'text':>13} {'image':>13} {'group':>13}")
  for fraction in [0.0] + fractions:
    sub = [r for r in rows if r["fraction"] == fraction]
    stats = {k: (float(np.mean([r[k] for r in sub])), float(np.std([r[k] for r in sub])))
             for k in ("text", "image", "group")}
    summary[str(fraction)] = dict(num_pairs=sub[0]["num_pairs"], runs=len(sub),
                                  **{k: dict(mean=m, std=s) for k, (m, s) in stats.items()})
    label = "pretrained" if fraction == 0 else f"{fraction:.0%}"
    print(f"{label:>10} {sub[0]['num_pairs']:>6} " +
          " ".join(f"{m:>6.3f}+-{s:<5.3f}" for m, s in stats.values()))
  lo, hi = str(min(fractions)), str(max(fractions))
  gap = summary[hi]["group"]["mean"] - summary[lo]["group"]["mean"]
  print(f"group score gap {hi} vs {lo}: {gap:+.3f} (pretrained group {summary['0.0']['group']['mean']:.3f})")

  result = dict(config=json.loads(config.to_json_best_effort()), rows=rows, summary=summary,
                group_gap=gap, device=str(jax.devices()[0].platform))
  files.write_text(_OUT.value, json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
