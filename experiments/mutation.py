r"""Mutation testing: would the tests notice a wrong pick? One command, configured in pyproject.toml.

  python -m experiments.mutation [--groups=acquisition,evaluation,...] [--commit=HEAD]
      [--out=experiments/results/mutation.md]

Tool: cosmic-ray (the `mutation` extra). It mutates the abstract syntax tree of whole modules, so
the jitted cores (functions under @jax.jit, where the masks, clamps and offsets live) are mutated
too (mutmut 3 skips every decorated function), and it runs each mutant's tests in a fresh process,
so no compiled program of the unmutated code is reused.

[tool.mutation] in pyproject.toml holds the operators kept (realistic one-line bugs: `<` for `<=`,
an off-by-one number, `+` for `-`, `&` for `|`, a dropped `-` or `~`, a loop that never runs, a
negated condition), per group the modules and the test files run against each mutant (-x: the
first failure kills it), and the survivors judged equivalent, each with its reason.

The mutants never touch this working tree: `--commit` (default HEAD, so commit first) is cloned
into a temporary directory, and the tests run there with that clone first on sys.path. The table
(killed / non-equivalent per group, every survivor with its line) goes to `--out`.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib

from absl import app
from absl import flags

_GROUPS = flags.DEFINE_list("groups", None, "Groups of [tool.mutation.groups] to run (all).")
_COMMIT = flags.DEFINE_string("commit", "HEAD", "The commit whose code and tests are mutated.")
_OUT = flags.DEFINE_string("out", "experiments/results/mutation.md", "The result table.")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Write the table from the sessions so far; run no mutant."
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    os.path.join(tempfile.gettempdir(), "mmal_jax_mutation"),
    "Clone and cosmic-ray sessions (outside the working tree); a rerun with the same commit "
    "resumes the mutants still pending.",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path=os.path.join(ROOT, "pyproject.toml")):
  with open(path, "rb") as f:
    return tomllib.load(f)["tool"]["mutation"]


def cosmic_ray_config(cfg, group, clone):
  """The cosmic-ray TOML of one group, run inside `clone`."""
  env = " ".join(f"{k}={v}" for k, v in cfg.get("env", {}).items())
  tests = " ".join(group["tests"])
  command = (
      f"env PYTHONPATH={clone} {env} nice -n 10 {sys.executable} -m pytest -x -q "
      f"-p no:cacheprovider {tests}"
  )
  kept = "|".join(cfg["operators"])
  lines = [
      "[cosmic-ray]",
      f"module-path = {json.dumps(group['modules'])}",
      f"timeout = {float(cfg['timeout'])}",
      f"test-command = {json.dumps(command)}",
      "[cosmic-ray.distributor]",
      'name = "local"',
      "[cosmic-ray.filters.operators-filter]",
      # The filter skips operators matching any pattern: skip all but the kept ones.
      f"exclude-operators = {json.dumps([f'(?!({kept})$)'])}",
  ]
  return "\n".join(lines) + "\n"


def _source_line(clone, path, line):
  with open(os.path.join(clone, path)) as f:
    return f.read().splitlines()[line - 1].strip()


def _failed_test(output):
  m = re.search(r"^FAILED (\S+)", output or "", re.M)
  if m:
    return m.group(1).split("::")[0]
  m = re.search(r"^ERROR (\S+)", output or "", re.M)
  return m.group(1).split("::")[0] if m else ("timeout" if output == "timeout" else "?")


def run_group(cfg, name, group, clone, workdir):
  """Runs one group; returns a list of dicts (path, line, operator, source, outcome, killed_by)."""
  config = os.path.join(workdir, f"{name}.toml")
  db = os.path.join(workdir, f"{name}.sqlite")
  with open(config, "w") as f:
    f.write(cosmic_ray_config(cfg, group, clone))
  bin_dir = os.path.dirname(sys.executable)
  run = lambda *a: subprocess.run(a, cwd=clone, check=True, capture_output=True, text=True)
  # A mutant interrupted mid-run (the process killed) leaves its module mutated: restore it.
  run("git", "checkout", "-q", "--", ".")
  if not os.path.exists(db):
    run(os.path.join(bin_dir, "cosmic-ray"), "init", config, db)
    run(os.path.join(bin_dir, "cr-filter-operators"), db, config)
    run(os.path.join(bin_dir, "cr-filter-pragma"), db)
  begin = time.time()
  if not _REPORT_ONLY.value:
    run(os.path.join(bin_dir, "cosmic-ray"), "exec", config, db)
  print(f"{name}: {time.time() - begin:.0f} s", flush=True)
  out = []
  for row in run(os.path.join(bin_dir, "cosmic-ray"), "dump", db).stdout.splitlines():
    item, result = json.loads(row)
    if result is not None and result.get("worker_outcome") == "skipped":
      continue
    if result is None:
      result = dict(test_outcome="pending")
    (mutation,) = item["mutations"]
    path = os.path.relpath(mutation["module_path"], ".")
    line = mutation["start_pos"][0]
    outcome = result["test_outcome"]
    out.append(
        dict(
            path=path,
            line=line,
            operator=mutation["operator_name"].removeprefix("core/"),
            occurrence=mutation["occurrence"],
            source=_source_line(clone, path, line),
            outcome=outcome,
            killed_by=_failed_test(result.get("output")) if outcome == "killed" else "",
        )
    )
  return out


def _equivalent(cfg, m):
  for e in cfg.get("equivalent", []):
    if e["path"] == m["path"] and e["operator"] == m["operator"] and e["source"] == m["source"]:
      return e["reason"]
  return None


def table(cfg, results, commit, seconds):
  lines = [
      "# Mutation score",
      "",
      f"`python -m experiments.mutation` at commit {commit[:10]} (cosmic-ray; operators and "
      f"tests per group in pyproject.toml [tool.mutation]); {seconds / 60:.0f} min wall on the "
      "shared 2-core CPU. Killed / non-equivalent mutants; incompetent mutants (the mutated "
      "module fails to import) count as neither.",
      "",
      "| group | mutants | killed | equivalent | survived | not run yet | score |",
      "|---|---|---|---|---|---|---|",
  ]
  survivors = []
  for name, ms in results.items():
    killed = sum(m["outcome"] == "killed" for m in ms)
    alive = [m for m in ms if m["outcome"] == "survived"]
    equivalent = [m for m in alive if _equivalent(cfg, m)]
    pending = sum(m["outcome"] == "pending" for m in ms)
    live = killed + len(alive) - len(equivalent)
    score = f"{100 * killed / live:.0f}% ({killed}/{live})" if live else "-"
    lines.append(
        f"| {name} | {len(ms)} | {killed} | {len(equivalent)} | "
        f"{len(alive) - len(equivalent)} | {pending} | {score} |"
    )
    survivors += [(name, m, _equivalent(cfg, m)) for m in alive]
  lines += ["", "## Survivors", "", "| group | where | mutation | source line | verdict |"]
  lines.append("|---|---|---|---|---|")
  for name, m, reason in survivors:
    lines.append(
        f"| {name} | {m['path']}:{m['line']} | {m['operator']} #{m['occurrence']} | "
        f"`{m['source']}` | {'equivalent: ' + reason if reason else '**survived**'} |"
    )
  lines += ["", "## Killed by", "", "| group | test file | mutants |", "|---|---|---|"]
  for name, ms in results.items():
    by = {}
    for m in ms:
      if m["outcome"] == "killed":
        by[m["killed_by"]] = by.get(m["killed_by"], 0) + 1
    lines += [f"| {name} | {k} | {v} |" for k, v in sorted(by.items())]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  cfg = load_config()
  groups = cfg["groups"]
  names = _GROUPS.value or list(groups)
  unknown = sorted(set(names) - set(groups))
  if unknown:
    print(f"error: unknown group(s) {unknown}; use some of {sorted(groups)}", file=sys.stderr)
    sys.exit(2)
  commit = subprocess.run(
      ["git", "rev-parse", _COMMIT.value], cwd=ROOT, check=True, capture_output=True, text=True
  ).stdout.strip()
  begin = time.time()
  workdir = os.path.join(_WORKDIR.value, commit[:10])
  clone = os.path.join(workdir, "clone")
  if not os.path.isdir(clone):
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
  results = {name: run_group(cfg, name, groups[name], clone, workdir) for name in names}
  with open(os.path.join(ROOT, _OUT.value) + ".json", "w") as f:
    json.dump(results, f, indent=1)
  text = table(cfg, results, commit, time.time() - begin)
  with open(os.path.join(ROOT, _OUT.value), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  app.run(main)
