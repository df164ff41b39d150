"""Run outputs, rebuilt from the list of per-round records: metrics.jsonl, TensorBoard,
curves.png, summary.md.

A record is a flat dict: the META_KEYS below, the TIMING_KEYS, and every evaluation score (floats,
NaN where undefined). Everything here is a pure function of the records, so a resumed run rewrites
identical outputs; files are written to a temporary name and renamed into place.

Every write of a run goes through one `Writer`, which writes (and prints) on process 0 only
(`jax.process_index() == 0`): with several processes, one of them owns the work directory.
"""

import collections
import json
import math
import os
import shutil

import jax
import numpy as np

from mmal_jax import files

META_KEYS = (
    "strategy",
    "seed",
    "round",
    "num_queried",
    "num_pairs",
    "percent_annotated",
    "modality",
)
TIMING_KEYS = ("acquisition_seconds", "training_seconds")


def metric_names(records):
  """Evaluation score names, in first-seen order (everything that is not meta or timing)."""
  names = {}
  for r in records:
    names.update({k: None for k in r if k not in META_KEYS and k not in TIMING_KEYS})
  return list(names)


def _finite_or_none(x):
  return None if isinstance(x, float) and not math.isfinite(x) else x


def curves(records):
  """Mean and std over seeds, per strategy and round.

  Returns: {strategy: {name: (x f64[R], mean f64[R], std f64[R])}} with x the mean percent
  annotated at round r; names are metric_names(records) and TIMING_KEYS.
  """
  by = collections.defaultdict(lambda: collections.defaultdict(list))
  for r in records:
    by[r["strategy"]][r["round"]].append(r)
  out = {}
  for strategy, rounds in by.items():
    rs = sorted(rounds)
    x = np.array([np.mean([r["percent_annotated"] for r in rounds[k]]) for k in rs])
    out[strategy] = {}
    for name in metric_names(records) + list(TIMING_KEYS):
      vals = [np.array([r.get(name, np.nan) for r in rounds[k]], np.float64) for k in rs]
      out[strategy][name] = (
          x,
          np.array([v.mean() for v in vals]),
          np.array([v.std() for v in vals]),
      )
  return out


def savings(records, *, headline, baseline="random"):
  """Annotation savings: for each strategy, the smallest percent annotated at which its mean
  `headline` score reaches the baseline's final mean score (None if it never does).

  Returns: (target float, {strategy: percent or None}); (None, {}) without a baseline run.
  """
  c = curves(records)
  if baseline not in c or headline not in c[baseline]:
    return None, {}
  target = c[baseline][headline][1][-1]
  out = {}
  for strategy, m in c.items():
    x, mean, _ = m[headline]
    reached = np.flatnonzero(mean >= target)
    out[strategy] = float(x[reached[0]]) if reached.size else None
  return float(target), out


def summary_markdown(records, *, headline, baseline="random"):
  """The final table (mean +- std over seeds at each strategy's last round) and the savings."""
  c = curves(records)
  names = metric_names(records)
  seeds = sorted({r["seed"] for r in records})
  lines = [
      f"# Results ({len(seeds)} seed{'s' * (len(seeds) > 1)}: {seeds})",
      "",
      "Final round, mean +- std over seeds; seconds are totals over all rounds (mean over seeds).",
      "",
      "| strategy | % annotated | " + " | ".join(names) + " | acquisition s | training s |",
      "|---" * (len(names) + 4) + "|",
  ]
  totals = collections.defaultdict(lambda: collections.defaultdict(float))
  for r in records:
    for k in TIMING_KEYS:
      totals[r["strategy"]][k] += r.get(k, 0.0) / len(seeds)
  for strategy, m in c.items():
    x = m[names[0]][0][-1] if names else float("nan")
    cells = [f"{m[n][1][-1]:.3f} +- {m[n][2][-1]:.3f}" for n in names]
    cells += [f"{totals[strategy][k]:.1f}" for k in TIMING_KEYS]
    lines.append(f"| {strategy} | {x:.1f} | " + " | ".join(cells) + " |")
  target, reach = savings(records, headline=headline, baseline=baseline)
  lines += ["", "## Annotation savings", ""]
  if target is None:
    lines.append(f"No `{baseline}` run, so no savings are reported.")
  else:
    final = c[baseline][headline][0][-1]
    lines += [
        f"`{baseline}` ends at {headline} = {target:.3f} with {final:.1f}% annotated. "
        f"Smallest % annotated at which each strategy reaches it:",
        "",
        "| strategy | % annotated to reach it | saving vs " + baseline + " |",
        "|---|---|---|",
    ]
    for strategy, p in reach.items():
      lines.append(
          f"| {strategy} | {'not reached' if p is None else f'{p:.1f}'} | "
          f"{'-' if p is None else f'{final - p:.1f} points'} |"
      )
  return "\n".join(lines) + "\n"


def plot_curves(records, path):
  """curves.png: each metric against % annotated, one line per strategy, mean +- 0.5 std band."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  c = curves(records)
  names = metric_names(records) + list(TIMING_KEYS)
  cols = min(3, len(names))
  rows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    for strategy, m in c.items():
      x, mean, std = m[name]
      ax.plot(x, mean, marker="o", ms=3, label=strategy)
      ax.fill_between(x, mean - 0.5 * std, mean + 0.5 * std, alpha=0.2)
    ax.set_title(name)
    ax.set_xlabel("% of pairs annotated")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(names) :]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=8)
  fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.95, hspace=0.45, wspace=0.25)
  with files.atomic_write(path) as f:
    fig.savefig(f, format="png", dpi=80)
  plt.close(fig)


def write_tensorboard(records, logdir):
  """One TensorBoard run per strategy/seed, scalars at step = number of queries so far."""
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

  tmp, old = f"{logdir}.tmp", f"{logdir}.old"
  for d in (tmp, old):
    shutil.rmtree(d, ignore_errors=True)
  writers = {}
  for r in records:
    key = f"{r['strategy']}_seed{r['seed']}"
    if key not in writers:
      writers[key] = SummaryWriter(os.path.join(tmp, key))
    for name in metric_names([r]) + list(TIMING_KEYS) + ["percent_annotated"]:
      value = r.get(name)
      if isinstance(value, (int, float)) and math.isfinite(value):
        writers[key].add_scalar(name, value, global_step=r["num_queried"])
  for w in writers.values():
    w.close()
  os.makedirs(tmp, exist_ok=True)
  if os.path.exists(logdir):
    os.replace(logdir, old)
  os.replace(tmp, logdir)
  shutil.rmtree(old, ignore_errors=True)


def write_outputs(workdir, records, *, headline, baseline="random", plot=True):
  """(Re)writes metrics.jsonl, tensorboard/, summary.md and (with `plot`) curves.png in `workdir`.

  Plotting costs seconds on a small CPU, so the loop plots only when a run (strategy, seed) ends.
  """
  lines = [json.dumps({k: _finite_or_none(v) for k, v in r.items()}) for r in records]
  files.write_text(os.path.join(workdir, "metrics.jsonl"), "".join(line + "\n" for line in lines))
  write_tensorboard(records, os.path.join(workdir, "tensorboard"))
  if records:
    if plot:
      plot_curves(records, os.path.join(workdir, "curves.png"))
    files.write_text(
        os.path.join(workdir, "summary.md"),
        summary_markdown(records, headline=headline, baseline=baseline),
    )


class Writer:
  """The one output writer of a run in `workdir`; inactive (writes and prints nothing) off
  process 0, so that several processes never write the same files."""

  def __init__(self, workdir, *, headline, active=None):
    self.workdir = workdir
    self.headline = headline
    self.active = jax.process_index() == 0 if active is None else bool(active)

  def write_config(self, config_json):
    """Creates the work directory and writes config.json, unless it is already there."""
    if not self.active:
      return
    path = os.path.join(self.workdir, "config.json")
    os.makedirs(self.workdir, exist_ok=True)
    if not os.path.exists(path):
      files.write_text(path, config_json)

  def write_outputs(self, records, *, plot=True):
    """`write_outputs` of the records so far (see there)."""
    if self.active:
      write_outputs(self.workdir, records, headline=self.headline, plot=plot)

  def print(self, line):
    if self.active:
      print(line, flush=True)


def _duration(seconds):
  seconds = int(round(seconds))
  return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(record, *, headline, done, total, seconds_per_round):
  """One line per round: where we are, the headline score, timings, and an ETA.

  `done` of `total` rounds (all strategies and seeds) are finished; the ETA assumes the remaining
  ones take `seconds_per_round` each (the average of the rounds this process ran).
  """
  score = record.get(headline, float("nan"))
  return (
      f"[{record['strategy']} seed {record['seed']}] round {record['round']} "
      f"{record['percent_annotated']:5.1f}% annotated  {headline}={score:.3f}  "
      f"acq {record.get('acquisition_seconds', 0.0):.1f}s train {record.get('training_seconds', 0.0):.1f}s  "
      f"| {done}/{total} rounds, ETA {_duration(seconds_per_round * (total - done))}"
  )
