"""experiments/claims.py in smoke mode (fig1, table2, table3 on a 40-pair pool) and its statistics,
checked against a NumPy computation from the metrics.jsonl files the runs wrote; the report table.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import claims
from experiments import report
from experiments import stats
from mmal_jax import defaults
from mmal_jax import logs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = (0, 1)


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _nan(x):
  return float("nan") if x is None else float(x)


def _table(workdirs, metric):
  """f64[seeds, rounds] of one metric and f64[rounds] percent annotated (seed 0's)."""
  rows = [sorted(_records(w), key=lambda r: r["round"]) for w in workdirs]
  return (
      np.array([[_nan(r[metric]) for r in rs] for rs in rows]),
      np.array([r["percent_annotated"] for r in rows[0]]),
  )


def _se(x, axis=0):
  return np.std(x, axis=axis, ddof=1) / np.sqrt(x.shape[axis])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  root = tmp_path_factory.mktemp("claims")
  patch = pytest.MonkeyPatch()
  patch.setenv("MMAL_JAX_CACHE", str(root / "cache"))
  # The loop's own figure: 2 s a run.
  patch.setattr(logs, "plot_curves", lambda records, path, **kw: None)
  args = claims.Args(
      seeds=SEEDS, smoke=True, workdir=str(root / "runs"), results=str(root / "results")
  )
  try:
    out = {name: claims.run_claim(name, args) for name in ("fig1", "table2", "table3")}
    yield root, args, out
  finally:
    patch.undo()


def _dirs(root, strategy, slug=""):
  name = strategy + (f"__{slug}" if slug else "")
  return [str(root / "runs" / "smoke" / "siglip_colorswap" / name / f"seed{s}") for s in SEEDS]


def test_fig1_statistics_match_a_numpy_computation_from_metrics_jsonl(smoke):
  root, args, out = smoke
  with open(os.path.join(args.results, "fig1.json")) as f:
    saved = json.load(f)
  assert os.path.exists(os.path.join(args.results, "fig1.png"))
  assert saved["seeds"] == list(SEEDS) and saved["smoke"] and saved["errors"] == []
  for label in ("ours",) + claims.BASELINES:
    arm = saved["arms"][label]
    assert arm["seeds"] == list(SEEDS)
    for metric in ("text", "image", "group"):
      x, pct = _table(_dirs(root, label), metric)
      c = arm["curves"][metric]
      np.testing.assert_allclose(c["mean"], x.mean(0), atol=1e-12)
      np.testing.assert_allclose(c["se"], _se(x), atol=1e-12)
      np.testing.assert_allclose(c["percent"], pct)
  ours_text, _ = _table(_dirs(root, "ours"), "text")
  for c in saved["comparisons"]:
    a, _ = _table(_dirs(root, c["reference"]), c["metric"])
    b, _ = _table(_dirs(root, c["other"]), c["metric"])
    d = a - b
    np.testing.assert_allclose(c["paired"]["mean"], d.mean(0), atol=1e-12)
    per_seed = d[:, 1:].mean(1)  # rounds 1..R: round 0 is the shared pretrained model
    avg = c["paired"]["average"]
    assert avg["n"] == len(SEEDS)
    assert avg["mean"] == pytest.approx(per_seed.mean(), abs=1e-12)
    se = _se(per_seed)
    assert (avg["se"] is None and se == 0) or avg["se"] == pytest.approx(se, abs=1e-12)
    lo, hi = per_seed.mean() - 2 * se, per_seed.mean() + 2 * se
    assert c["outcome"] == ("better" if lo > 0 else "worse" if hi < 0 else "tie")
  assert {
      (c["reference"], c["other"], c["metric"]) for c in saved["comparisons"] if c["verdict"]
  } == {("ours", b, "group") for b in claims.BASELINES}
  # Savings: Random's final mean group score, reached by ours' mean curve at round >= 1.
  r, pct = _table(_dirs(root, "random"), "group")
  o, _ = _table(_dirs(root, "ours"), "group")
  target = r.mean(0)[-1]
  reached = [p for k, (p, m) in enumerate(zip(pct, o.mean(0))) if k >= 1 and m >= target]
  s = saved["savings"][""]
  assert s["target"] == pytest.approx(target) and s["baseline_percent"] == pytest.approx(pct[-1])
  assert s["reach"]["ours"] == (pytest.approx(min(reached)) if reached else None)
  if reached:
    assert s["saving"]["ours"] == pytest.approx(100 * (pct[-1] - min(reached)) / pct[-1])
  assert ours_text.shape == (len(SEEDS), 3)  # 2 rounds after the pretrained round 0


def test_table2_shares_fig1s_ours_runs_and_forces_the_query_modality(smoke):
  root, args, out = smoke
  assert out["table2"]["arms"]["auto"]["workdirs"] == out["fig1"]["arms"]["ours"]["workdirs"]
  assert not os.path.exists(_dirs(root, "ours", "query_modality=auto")[0])
  for rule in ("text", "image", "random"):
    records = [r for w in _dirs(root, "ours", f"query_modality={rule}") for r in _records(w)]
    assert len(records) == 3 * len(SEEDS)
    queried = {r["modality"] for r in records if r["round"] >= 1}
    assert queried <= ({rule} if rule != "random" else {"image", "text"})
  a, _ = _table(_dirs(root, "ours"), "group")
  b, _ = _table(_dirs(root, "ours", "query_modality=image"), "group")
  got = next(c for c in out["table2"]["comparisons"] if c["other"] == "image")
  assert got["paired"]["average"]["mean"] == pytest.approx((a - b)[:, 1:].mean(), abs=1e-12)


@pytest.mark.filterwarnings(
    "ignore:Mean of empty slice"
)  # a round with no correct pseudo-alignment
def test_table3_reads_fig1s_runs_without_running(smoke):
  root, _, out = smoke
  t3 = out["table3"]
  assert t3["arms"]["ours"]["workdirs"] == out["fig1"]["arms"]["ours"]["workdirs"]
  c = next(c for c in t3["comparisons"] if c["verdict"])
  x, _ = _table(_dirs(root, "ours"), "margin_correct")
  y, _ = _table(_dirs(root, "ours"), "margin_incorrect")
  np.testing.assert_allclose(c["paired"]["mean"], np.nanmean(x - y, axis=0), atol=1e-12)
  # Without fig1's runs there is nothing to read, and nothing is run.
  empty = claims.Args(seeds=(7,), smoke=True, workdir=str(root / "none"), results=str(root / "r2"))
  result = claims.run_claim("table3", empty)
  assert (
      result["holds"] == "not run"
      and "run `python -m experiments.claims --claim=fig1` first" in result["errors"][0]
  )
  assert not os.path.exists(root / "none")


def test_report_lists_every_claim_and_says_what_was_not_run(smoke):
  _, args, _ = smoke
  text = report.reproduction_markdown(args.results)
  rows = [
      line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")
  ]
  assert [r.split(":")[0][2:] for r in rows] == list(claims.CLAIMS)
  by_name = {r.split(":")[0][2:]: r for r in rows}
  assert "SMOKE RUN, no evidence" in by_name["fig1"] and by_name["fig1"].endswith("smoke) |")
  assert by_name["stream"].endswith("| not run |") and "no stream.json" in by_name["stream"]
  # Each measured row names the checkpoint its runs started from (the committed .npz's digest).
  with open(defaults.PRETRAINED, "rb") as f:
    assert f"sha256 {hashlib.sha256(f.read()).hexdigest()[:12]}" in by_name["fig1"]


def test_curve_table_rows_are_the_seed_means_and_paired_differences(smoke):
  root, _, out = smoke
  lines = report.curve_table(out["fig1"]).splitlines()
  ours, _ = _table(_dirs(root, "ours"), "group")
  for strategy in ("ours", "random"):
    values, _ = _table(_dirs(root, strategy), "group")
    row = next(line for line in lines if line.startswith(f"| {strategy} |"))
    last = row.rstrip(" |").split(" | ")[-1]
    assert last == f"{values[:, -1].mean():.3f} +- {_se(values[:, -1:])[0]:.3f}", row
    if strategy != "ours":
      diff = ours[:, -1] - values[:, -1]
      row = next(line for line in lines if line.startswith(f"| ours - {strategy} (paired) |"))
      assert (
          row.rstrip(" |").split(" | ")[-1] == f"{diff.mean():+.3f} +- {_se(diff[:, None])[0]:.3f}"
      )


def test_statistics_on_hand_made_records():
  def rec(seed, rnd, value):
    return dict(seed=seed, round=rnd, percent_annotated=5.0 * rnd, group=value)

  a = [
      rec(s, k, v)
      for s, vals in enumerate([[0.1, 0.3, 0.5], [0.1, 0.25, 0.6], [0.1, 0.4, None]])
      for k, v in enumerate(vals)
  ]
  b = [
      rec(s, k, v)
      for s, vals in enumerate([[0.1, 0.2, 0.3], [0.1, 0.2, 0.4], [0.1, 0.1, 0.2]])
      for k, v in enumerate(vals)
  ]
  c = stats.curve(a, "group")
  assert c["n"] == [3, 3, 2]  # the missing (None) value is left out, not counted as 0
  assert c["mean"][2] == pytest.approx(0.55) and c["se"][2] == pytest.approx(
      np.std([0.5, 0.6], ddof=1) / math.sqrt(2)
  )
  p = stats.paired(a, b, "group")
  assert p["mean"][1] == pytest.approx(np.mean([0.1, 0.05, 0.3]))
  # Seed 2 lacks round 2, so only seeds 0 and 1 count in the mean over budgets: (0.15, 0.125).
  assert p["average"]["n"] == 2 and p["average"]["mean"] == pytest.approx(0.1375)
  assert p["average"]["se"] == pytest.approx(0.0125)
  assert stats.better_verdict(p["average"]) == "better"  # 0.1375 - 2 * 0.0125 > 0
  assert stats.better_verdict(dict(mean=0.04, se=0.025, n=2)) == "tie"
  assert stats.better_verdict(dict(mean=-0.06, se=0.025, n=4)) == "worse"
  assert stats.better_verdict(dict(mean=0.5, se=float("nan"), n=1)) == "too few seeds"
  assert stats.equivalence_verdict(dict(mean=0.005, se=0.005, n=4), 0.02) == "equivalent"
  assert stats.equivalence_verdict(dict(mean=-0.05, se=0.01, n=4), 0.02) == "different"
  assert stats.equivalence_verdict(dict(mean=0.015, se=0.01, n=4), 0.02) == "unclear"
  s = stats.savings({"random": stats.curve(b, "group"), "ours": stats.curve(a, "group")}, "random")
  # Random ends at mean 0.3 at 10%; ours' mean is 0.317 at 5% already: a 50% saving.
  assert (
      s["target"] == pytest.approx(0.3)
      and s["reach"]["ours"] == 5.0
      and s["saving"]["ours"] == 50.0
  )
  assert s["reach"]["random"] == 10.0


def _scores(workdir):
  """A run's records without its seconds (which differ between any two runs)."""
  return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in _records(workdir)]


def test_workers_run_side_by_side_with_the_same_results_as_one_process(smoke, tmp_path):
  root, _, _ = smoke
  p = subprocess.run(
      [sys.executable, "-m", "experiments.claims", "--claim=fig1,table3", "--smoke", "--seeds=0"]
      + ["--workers=2"]
      + [f"--workdir={tmp_path / 'runs'}", f"--results={tmp_path / 'results'}"],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=900,
      check=False,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  with open(tmp_path / "results" / "fig1.json") as f:
    saved = json.load(f)
  assert saved["errors"] == [] and saved["holds"] != "not run"
  for label in ("ours",) + claims.BASELINES:
    assert saved["arms"][label]["seeds"] == [0]
    side_by_side = tmp_path / "runs" / "smoke" / "siglip_colorswap" / label / "seed0"
    assert _scores(side_by_side) == _scores(_dirs(root, label)[0]), label
    assert os.path.exists(str(side_by_side) + ".seconds.json")


def _proc_stat(pid):
  """(state, parent pid) of a process from /proc, or None when it is gone."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except OSError:
    return None
  return fields[0], int(fields[1])


def _workers_of(pid):
  """The pids of the multiprocessing workers `pid` spawned."""
  found = []
  for name in os.listdir("/proc"):
    try:
      with open(f"/proc/{name}/cmdline", "rb") as f:
        spawned = b"spawn_main" in f.read()
    except OSError:  # not a process, or gone
      continue
    stat = _proc_stat(name) if spawned else None
    if stat and stat[1] == pid:
      found.append(int(name))
  return found


def _running(pids):
  return [pid for pid in pids if (_proc_stat(pid) or ("Z",))[0] != "Z"]  # gone or a zombie: ended


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc (Linux)")
def test_workers_stop_when_the_claims_process_is_killed(tmp_path):
  p = subprocess.Popen(
      [sys.executable, "-m", "experiments.claims", "--claim=fig1", "--smoke", "--seeds=0,1"]
      + ["--workers=2", f"--workdir={tmp_path / 'runs'}", f"--results={tmp_path / 'results'}"],
      cwd=ROOT,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
      env={**os.environ, "MMAL_JAX_CACHE": str(tmp_path / "cache")},
  )
  workers = []
  try:
    for _ in range(1500):  # at most 5 minutes; they start within seconds of the command
      workers = _workers_of(p.pid)
      if len(workers) == 2 or p.poll() is not None:
        break
      time.sleep(0.2)
    assert len(workers) == 2, "the claims process did not start two workers"
    p.kill()  # SIGKILL: nothing runs in the parent, so only the workers' own watch can end them
    p.wait()
    for _ in range(120):  # the watch looks once a second
      if not _running(workers):
        break
      time.sleep(0.5)
    assert not _running(workers), "workers still run after the claims process was killed"
  finally:
    p.kill()
    for pid in _running(workers):
      os.kill(pid, 9)


def test_a_run_that_failed_in_a_worker_is_reported_as_its_claims_error(smoke):
  root, args, _ = smoke
  arm = claims.Arm("ours", "ours")
  workdir = _dirs(root, "ours")[1]
  out = claims.run_arm(
      arm, SEEDS, args.workdir, True, run=False, failed={workdir: "ours seed 1: why it failed"}
  )
  assert out["complete"] == [0] and out["errors"] == ["ours seed 1: why it failed"]


def test_plan_counts_each_shared_run_once():
  rows = {
      r["claim"]: r for r in claims.plan(["fig1", "table2", "table3", "fig5"], SEEDS, smoke=True)
  }
  # Smoke: 2 rounds of 4 pairs, 1 epoch: (4 + 8) pair-epochs per run.
  assert (rows["fig1"]["runs"], rows["fig1"]["pair_epochs"]) == (5 * 2, 5 * 2 * 12)
  assert rows["table2"]["runs"] == 3 * 2  # "auto" is fig1's "ours"
  assert rows["table3"]["runs"] == 0 and rows["fig5"]["runs"] == 3 * 2  # B_C = 2B is fig1's "ours"


def test_bad_command_lines_exit_2_with_one_line():
  for argv, match in (
      (["--claim=fig9"], "unknown ['fig9']"),
      (["--claim=fig1", "--seeds=0,0"], "distinct"),
  ):
    p = subprocess.run(
        [sys.executable, "-m", "experiments.claims"] + argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and match in p.stderr, p.stderr
