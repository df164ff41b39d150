r"""The README's "Reproduction" table, from the claim results in experiments/results/.

  python -m experiments.report [--results=experiments/results] [--out=RESULTS/reproduction.md]

One row per claim of experiments/claims.py, in its order: claim | paper | ours (mean +- s.e. over
seeds, paired differences, verdicts) | holds?. A claim without a results file, or whose runs
failed, is listed as "not run" with the reason; a smoke run (--smoke) is listed but marked as no
evidence. "holds?" is the verdict the claim's pre-set criterion (written under the table) gave.
"""

import json
import os
import sys

from absl import app
from absl import flags

from experiments import claims as claims_lib


def define_flags():
  """Defined only when run as a script, so importing this module defines none."""
  flags.DEFINE_string("results", claims_lib.Args.results, "Directory of <claim>.json files.")
  flags.DEFINE_string("out", None, "Output markdown file (default RESULTS/reproduction.md).")


def _cell(text):
  return str(text).replace("|", "\\|").replace("\n", " ")


def _minutes(seconds):
  return f"{seconds / 60:.1f} min"


# Claims' JSONs written before the "checkpoint" field (2026-11-30) were all measured from the
# checkpoint shipped before experiments/pretrain_sweep.py picked V10: G, 227,138 params, width 64.
_BEFORE_FIELD = "checkpoint G (227,138 params, width 64), before the sweep"


def row(name, results_dir):
  """(markdown row, criterion line) of one claim."""
  claim = claims_lib.CLAIMS[name]
  path = os.path.join(results_dir, f"{name}.json")
  if not os.path.exists(path):
    ours = f"not run: no {name}.json (run `python -m experiments.claims --claim={name}`)"
    return (
        f"| {name}: {_cell(claim.title)} | {_cell(claim.paper)} | {_cell(ours)} | not run |",
        claim.criterion,
    )
  with open(path) as f:
    result = json.load(f)
  holds = result.get("holds", "not run")
  errors = result.get("errors", [])
  if holds == "not run":
    ours = "not run: " + ("; ".join(errors) if errors else "no completed runs")
  else:
    seeds = result.get("seeds", [])
    ours = result.get("summary", "") + (
        f" (seeds {','.join(map(str, seeds))}; compute {_minutes(result.get('compute_seconds') or 0.0)})"
        if seeds
        else ""
    )
    if errors:
      ours += "; problems: " + "; ".join(errors)
    if name != "fig4_middle":
      ours += f" [{result.get('checkpoint') or _BEFORE_FIELD}]"
  if result.get("smoke"):
    ours = "SMOKE RUN, no evidence: " + ours
    holds = f"({holds}, smoke)"
  return (
      f"| {name}: {_cell(claim.title)} | {_cell(claim.paper)} | {_cell(ours)} | {holds} |",
      claim.criterion,
  )


def reproduction_markdown(results_dir):
  lines = [
      "| claim | paper | ours (mean +- s.e. over seeds; paired differences) | holds? |",
      "|---|---|---|---|",
  ]
  criteria = []
  for name in claims_lib.CLAIMS:
    line, criterion = row(name, results_dir)
    lines.append(line)
    criteria.append(f"- {name}: {criterion}")
  return (
      "\n".join(
          lines
          + [
              "",
              'Criteria for "holds?" (fixed before any run; s.e. = std(ddof=1)/sqrt(n) '
              'over seeds; "mean over budgets" = per seed, the mean of the paired '
              "difference over rounds 1..R, then mean +- s.e. over seeds):",
              "",
          ]
          + criteria
      )
      + "\n"
  )


def curve_table(result, metric="group"):
  """The README's default-run table from a curve claim's result (fig1.json): per strategy the mean
  +- s.e. over seeds at every budget, then each paired (same-seed) difference of "ours"."""
  arms = result["arms"]
  percent = next(iter(arms.values()))["curves"][metric]["percent"]
  lines = [
      "| strategy | " + " | ".join(f"{p:g}%" for p in percent) + " |",
      "|---|" + "---|" * len(percent),
  ]
  for name, arm in arms.items():
    c = arm["curves"][metric]
    cells = [
        f"{m:.3f}" if (n < 2 or i == 0) else f"{m:.3f} +- {e:.3f}"
        for i, (m, e, n) in enumerate(zip(c["mean"], c["se"], c["n"]))
    ]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  for comp in result["comparisons"]:
    if comp["metric"] != metric or comp["reference"] != "ours":
      continue
    p = comp["paired"]
    cells = [""] + [f"{m:+.3f} +- {e:.3f}" for m, e in zip(p["mean"][1:], p["se"][1:])]
    lines.append(f"| ours - {comp['other']} (paired) | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(2)
  results = flags.FLAGS.results
  if not os.path.isdir(results):
    print(f"error: --results={results} is not a directory", file=sys.stderr)
    sys.exit(2)
  out = flags.FLAGS.out or os.path.join(results, "reproduction.md")
  from mmal_jax import files  # pylint: disable=g-import-not-at-top

  text = reproduction_markdown(results)
  fig1 = os.path.join(results, "fig1.json")
  if os.path.exists(fig1):
    with open(fig1) as f:
      text += (
          "\n## Fig. 1 per budget (group score; the README's default-run table)\n\n"
          + curve_table(json.load(f))
      )
  files.write_text(out, text)
  print(f"wrote {out}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
