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

  files.write_text(out, reproduction_markdown(results))
  print(f"wrote {out}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
