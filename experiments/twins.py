r"""Why "ours" trails Uncertainty and Coreset early on the embedded default: which pairs each buys.

  python -m experiments.twins [--claims=fig1,table2,fig5] [--seeds=0,1,2,3]

A diagnostic over finished claim runs (experiments/claims.py; nothing is trained here). In the
embedded ColorSwap-like pool every pair has its color-swap twin in the pool too (source rows 2g and
2g + 1 form group g, mmal_jax/data/synthetic.py). A model that knows objects and colors but not
which color goes with which object can only learn that binding from pairs whose twin is also
bought: SigLIP's loss then holds the twin caption as a hard negative of the twin image. This
script reads each run's final checkpoint (its annotation log) and reports, per strategy and round,
the share of bought pairs whose twin is bought too, and how crowded the bought pairs' attribute
bags are in the pool (low-margin items are those with close competitors), beside the group score
of that round; and over
every (run, round) of a claim, the rank correlation of that share with the group score's gain over
Random of the same seed and round. Writes experiments/results/twins.json.
"""

import collections
import json
import os

from absl import app
from absl import flags
import numpy as np

from experiments import captions
from experiments import claims
from experiments import stats
from mmal_jax import experiment
from mmal_jax.annotation import unaligned as unaligned_lib
from mmal_jax.annotation.oracle import Answers
from mmal_jax.training import checkpoints


def define_flags():
  """Defined only when run as a script, so importing this module (tests) defines none."""
  flags.DEFINE_list("claims", ["fig1", "table2", "fig5"], "Claims whose runs to read.")
  flags.DEFINE_list("seeds", ["0", "1", "2", "3"], "Seeds of the runs.")
  flags.DEFINE_string(
      "out", os.path.join(claims.ROOT, "experiments", "results", "twins.json"), "Output JSON."
  )


def _bought_rows(log: Answers, rows_of_image, queried_per_round):
  """Per round r >= 1: the source rows of the pairs bought in rounds 1..r."""
  for end in np.cumsum(queried_per_round):
    bought = Answers(log.modality[:end], log.item[:end], log.partner[:end])
    yield rows_of_image[bought.pairs()[0]]


def twin_shares(log: Answers, rows_of_image, queried_per_round):
  """Per round r >= 1: the share of pairs bought in rounds 1..r whose color-swap twin (source row
  r ^ 1) was bought in rounds 1..r too. rows_of_image: int64[N_img], source row of each image id."""
  return [
      float(np.isin(rows ^ 1, rows).mean()) if len(rows) else float("nan")
      for rows in _bought_rows(log, rows_of_image, queried_per_round)
  ]


def key_counts(texts):
  """int64[N]: for each pool caption, how many pool captions share its bag-of-attributes key
  (colors, sized shapes and background; experiments/captions.caption_keys): how crowded its
  neighbourhood is for a model that does not bind colors to shapes (1: alone; 0: unparsed)."""
  keys = [captions.caption_keys(t) for t in texts]
  counts = collections.Counter(k[1] for k in keys if k is not None)
  return np.array([counts[k[1]] if k is not None else 0 for k in keys], np.int64)


def crowding(log: Answers, rows_of_image, queried_per_round, counts):
  """Per round r >= 1: the mean key count (`key_counts`) of the pairs bought in rounds 1..r."""
  return [
      float(counts[rows].mean()) if len(rows) else float("nan")
      for rows in _bought_rows(log, rows_of_image, queried_per_round)
  ]


def _spearman(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  ok = np.isfinite(x) & np.isfinite(y)
  rx, ry = np.argsort(np.argsort(x[ok])), np.argsort(np.argsort(y[ok]))
  return float(np.corrcoef(rx, ry)[0, 1]), int(ok.sum())


def _run(arm, seed, cache):
  """(records, twin shares, crowding per round 1..R) of a finished run, or None when it is not
  there."""
  config, slug = claims.arm_config(arm, seed, smoke=False)
  workdir = claims.arm_workdir(
      os.path.join(claims.ROOT, "experiments", "runs"), arm, slug, seed, False
  )
  if not claims.finished(config, workdir, claims.load_config(arm.config)):
    return None
  if arm.config not in cache:
    exp = experiment.setup(config)
    cache[arm.config] = exp.pretrained, key_counts(exp.pool.texts)
  pretrained, counts = cache[arm.config]
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    _, state = ckpt.restore(ckpt.latest_step(), pretrained)
  finally:
    ckpt.close()
  records = [r for r in state["records"] if r["strategy"] == arm.strategy and r["seed"] == seed]
  queried = np.diff([r["num_queried"] for r in records])
  world = unaligned_lib.make_unaligned(
      2 * config.data.num_train_groups,
      seed=seed,
      missing_fraction=config.missing_fraction,
      missing_modality=config.missing_modality,
  )
  log = Answers.from_json(state["log"])
  rows = world.rows[unaligned_lib.IMAGE]
  return records, twin_shares(log, rows, queried), crowding(log, rows, queried, counts)


def main(argv):
  del argv
  seeds = [int(s) for s in flags.FLAGS.seeds]
  cache, result = {}, {}
  for name in flags.FLAGS.claims:
    claim = claims.CLAIMS[name if claims.CLAIMS[name].runs else claims.CLAIMS[name].reads]
    arms = claim.arms(False)
    runs = {a.label: {s: _run(a, s, cache) for s in seeds} for a in arms}
    rows, points = {}, []
    random_group = {s: v[0] for s, v in (runs.get("random") or {}).items() if v}
    for label, by_seed in runs.items():
      done = {s: v for s, v in by_seed.items() if v}
      if not done:
        continue
      num_rounds = min(len(v[1]) for v in done.values())
      rows[label] = dict(
          seeds=sorted(done),
          twin_share=[stats.mean_se([v[1][k] for v in done.values()]) for k in range(num_rounds)],
          crowding=[stats.mean_se([v[2][k] for v in done.values()]) for k in range(num_rounds)],
          group=[
              stats.mean_se([v[0][k + 1]["group"] for v in done.values()])
              for k in range(num_rounds)
          ],
          percent=[done[min(done)][0][k + 1]["percent_annotated"] for k in range(num_rounds)],
      )
      for s, (records, shares, _) in done.items():
        if s in random_group:
          points += [
              (shares[k], records[k + 1]["group"] - random_group[s][k + 1]["group"])
              for k in range(num_rounds)
          ]
    # None: too few points (a claim without a Random arm, e.g. fig5), not NaN, which is not JSON.
    rho, n = _spearman(*zip(*points)) if len(points) > 2 else (None, len(points))
    result[name] = dict(arms=rows, spearman_twin_share_vs_group_gain_over_random=rho, points=n)
    print(
        f"[{name}] per budget: share of bought pairs whose color-swap twin is bought too (mean +-"
        " s.e.); crowding: mean number of pool pairs sharing a bought pair's attribute bag; group"
    )
    for label, row in rows.items():
      cells = "  ".join(
          f"{p:.0f}%: {t['mean']:.2f}+-{t['se']:.2f} c{c['mean']:.2f} g{g['mean']:.3f}"
          for p, t, c, g in zip(row["percent"], row["twin_share"], row["crowding"], row["group"])
      )
      print(f"  {label:<14} {cells}")
    print(
        f"  Spearman(twin share, group - Random's group), {n} (run, round) points: "
        + ("n/a (no Random arm)" if rho is None else f"{rho:+.2f}")
    )
  with open(flags.FLAGS.out, "w") as f:
    json.dump(result, f, indent=1, allow_nan=False)
    f.write("\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
