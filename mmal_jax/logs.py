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
# Steady-state seconds of a round's selection and training, and apart from them the seconds both
# spent tracing and compiling (mmal_jax/compiles.py; most of it in a run's first rounds).
TIMING_KEYS = ("acquisition_seconds", "training_seconds", "compile_seconds")


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

  Returns: {strategy: {name: (x f64[R], mean f64[R], std f64[R], n int[R])}} with x the mean
  percent annotated at round r, std the population std and n the number of seeds at round r;
  names are metric_names(records) and TIMING_KEYS.
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
          np.array([len(v) for v in vals]),
      )
  return out


def _reach(rounds, percent, score, target):
  """Smallest percent annotated of a bought round (round >= 1) whose score is >= target."""
  reached = [p for k, p, v in zip(rounds, percent, score) if k >= 1 and v >= target]
  return min(reached) if reached else None


def savings(records, *, headline, baseline="random"):
  """Annotation savings vs `baseline`, where one is measurable.

  The target is the baseline's final mean `headline` score; a strategy reaches it at the smallest
  mean % annotated of a bought round (round >= 1: round 0, the pretrained model, bought nothing)
  whose mean score is >= target, and saves the baseline's final % minus that. A saving is
  measurable only when the baseline ends above the pretrained model's score (its round-0 mean):
  otherwise the pretrained model already "reaches" the target and any saving is an artefact.
  Per seed, the same against that seed's baseline run gives the saving's spread over seeds.

  Returns: None without a baseline run, else dict(target=, pretrained=, final_percent=,
    measurable=bool, reach={strategy: % or None}, saving={strategy: points or None},
    per_seed={strategy: [saving in points of each seed whose baseline gains, None where that
    seed's strategy never reaches it]}).
  """
  if not any(r["strategy"] == baseline and headline in r for r in records):
    return None
  c = curves(records)
  x, mean, _, _ = c[baseline][headline]
  rounds = sorted({r["round"] for r in records if r["strategy"] == baseline})
  target, final, pretrained = float(mean[-1]), float(x[-1]), float(mean[0])
  out = dict(
      target=target,
      pretrained=pretrained,
      final_percent=final,
      measurable=rounds[0] == 0 and target > pretrained,
      reach={},
      saving={},
      per_seed={},
  )
  runs = collections.defaultdict(list)
  for r in sorted(records, key=lambda r: r["round"]):
    runs[r["strategy"], r["seed"]].append((r["round"], r["percent_annotated"], r.get(headline)))
  for strategy, m in c.items():
    sx, smean, _, _ = m[headline]
    srounds = sorted({r["round"] for r in records if r["strategy"] == strategy})
    p = _reach(srounds, sx, smean, target) if out["measurable"] else None
    out["reach"][strategy] = p
    out["saving"][strategy] = None if p is None else final - p
    per_seed = []
    for (s, seed), run in runs.items():
      base = runs.get((baseline, seed))
      if s != strategy or not base or base[0][0] != 0 or not base[-1][2] > base[0][2]:
        continue  # no same-seed baseline run that gains over its pretrained model
      p = _reach(*zip(*run), base[-1][2])
      per_seed.append(None if p is None else base[-1][1] - p)
    out["per_seed"][strategy] = per_seed
  return out


def summary_markdown(records, *, headline, baseline="random"):
  """The final table (mean +- std over seeds at each strategy's last round) and the savings."""
  c = curves(records)
  names = metric_names(records)
  seeds = sorted({r["seed"] for r in records})
  lines = [
      f"# Results ({len(seeds)} seed{'s' * (len(seeds) > 1)}: {seeds})",
      "",
      "Final round, mean +- std over seeds; seconds are totals over all rounds (mean over seeds) "
      "of steady-state work: the seconds spent tracing and compiling (mostly in a run's first "
      "rounds) are apart, in compile s.",
      "",
      "| strategy | % annotated | "
      + " | ".join(names)
      + " | acquisition s | training s | compile s |",
      "|---" * (len(names) + 5) + "|",
  ]
  totals = collections.defaultdict(lambda: collections.defaultdict(float))
  for r in records:
    for k in TIMING_KEYS:
      if k in r:
        totals[r["strategy"]][k] += r[k] / len(seeds)
  for strategy, m in c.items():
    x = m[names[0]][0][-1] if names else float("nan")
    cells = [f"{m[n][1][-1]:.3f} +- {m[n][2][-1]:.3f}" for n in names]
    # Records written before compile seconds were measured apart have none: "n/a", not 0.
    cells += [f"{totals[strategy][k]:.1f}" if k in totals[strategy] else "n/a" for k in TIMING_KEYS]
    lines.append(f"| {strategy} | {x:.1f} | " + " | ".join(cells) + " |")
  lines += ["", "## Annotation savings", "", *_savings_lines(records, headline, baseline, seeds)]
  return "\n".join(lines) + "\n"


def _savings_lines(records, headline, baseline, seeds):
  s = savings(records, headline=headline, baseline=baseline)
  if s is None:
    return [f"No `{baseline}` run, so no savings are reported."]
  ends = (
      f"`{baseline}` ends at {headline} = {s['target']:.3f} with {s['final_percent']:.1f}% "
      f"annotated; the pretrained model (0% annotated) scores {s['pretrained']:.3f}."
  )
  if not s["measurable"]:
    return [
        f"{ends} No saving is measurable: `{baseline}` ends no higher than the pretrained model, "
        "so every strategy would 'reach' its final score without buying a pair."
    ]
  spread = len(seeds) > 1
  lines = [
      f"{ends} Smallest % annotated, from the first bought round on, at which each strategy's "
      "mean reaches that score, and the saving in percentage points of the pool"
      + (
          "; per seed, the same against that seed's own `random` run (mean +- std over the "
          "seeds that reach it; a seed whose baseline does not gain over the pretrained model is "
          "left out):"
          if spread
          else ":"
      ),
      "",
      f"| strategy | % annotated to reach it | saving vs {baseline} |"
      + (" per seed |" if spread else ""),
      "|---|---|---|" + ("---|" if spread else ""),
  ]
  for strategy, p in s["reach"].items():
    row = f"| {strategy} | {'not reached' if p is None else f'{p:.1f}'} | "
    row += "-" if p is None else f"{s['saving'][strategy]:.1f} points"
    if spread:
      got = [v for v in s["per_seed"][strategy] if v is not None]
      row += " | " + (
          f"{np.mean(got):.1f} +- {np.std(got):.1f} points ({len(got)} of "
          f"{len(s['per_seed'][strategy])} seeds reach it)"
          if got
          else f"not reached (0 of {len(s['per_seed'][strategy])} seeds)"
      )
    lines.append(row + " |")
  return lines


def plot_curves(records, path, *, headline=None):
  """curves.png: scores against % annotated, the `headline` score first, one line per strategy
  (mean over seeds, a band of +- one standard error when there are several seeds), and the
  timings apart, in a last row of their own (steady-state seconds per round, compile seconds)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  c = curves(records)
  scores = metric_names(records)
  if headline in scores:
    scores.remove(headline)
    scores.insert(0, headline)
  timings = [k for k in TIMING_KEYS if any(k in r for r in records)]
  cols = max(min(3, len(scores)), len(timings), 1)
  score_rows = math.ceil(len(scores) / cols)
  rows = score_rows + bool(timings)
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
  panels = [(axes.flat[i], name) for i, name in enumerate(scores)]
  panels += [(axes[score_rows, i], name) for i, name in enumerate(timings)]
  seeds = len({r["seed"] for r in records})
  for ax, name in panels:
    for strategy, m in c.items():
      x, mean, std, n = m[name]
      ax.plot(x, mean, marker="o", ms=3, label=strategy)
      if seeds > 1:
        se = np.where(n > 1, std / np.sqrt(np.maximum(n - 1, 1)), 0.0)  # sample std / sqrt(n)
        ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    unit = " (s per round)" if name in TIMING_KEYS else ""
    ax.set_title(name + unit + (" - headline" if name == headline else ""))
    ax.set_xlabel("% of pairs annotated")
    ax.grid(alpha=0.3)
  used = {id(ax) for ax, _ in panels}
  for ax in axes.flat:
    if id(ax) not in used:
      ax.axis("off")
  axes.flat[0].legend(fontsize=8)
  band = f"mean +- s.e. over {seeds} seeds" if seeds > 1 else "1 seed"
  fig.suptitle(f"{band}; seconds: steady state, compiles apart", fontsize=9)
  fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, hspace=0.5, wspace=0.25)
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
      plot_curves(records, os.path.join(workdir, "curves.png"), headline=headline)
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
      f"acq {record.get('acquisition_seconds', 0.0):.1f}s train "
      f"{record.get('training_seconds', 0.0):.1f}s compile {record.get('compile_seconds', 0.0):.1f}s  "
      f"| {done}/{total} rounds, ETA {_duration(seconds_per_round * (total - done))}"
  )
