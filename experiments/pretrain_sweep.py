"""Pretraining recipes for the embedded default, judged by the regime criteria alone (issue 9).

  python -m experiments.pretrain_sweep --out_dir=DIR                  # every variant, then the table
  python -m experiments.pretrain_sweep --out_dir=DIR --phase=data     # only generate the corpora
  python -m experiments.pretrain_sweep --out_dir=DIR --phase=report   # the table from DIR

Each variant is `experiments/pretrain_synthetic.py` with other settings, written to DIR/<name>/,
then `experiments/regime_check.py` on it (config `configs/siglip_colorswap.py:DIR/<name>/
pretrained_tiny.npz`; finetuning as the default config, 4 seeds) into DIR/<name>/regime.json.
`--jobs` variants run at once, each in its own process (on a GPU they share it: no preallocation).
The corpora are generated first, once each, into $MMAL_JAX_CACHE, on the CPU only (JAX_PLATFORMS
=cpu), so that they can be built while the accelerator does other work.

The variants and the selection rule were written down before any variant was trained. They vary
what the issue names as the likely way to the paper's regime: capacity (width 64 / 128), a richer
corpus (60,000 pairs), training longer (20 epochs), and the share of group-syntax captions whose
colors are assigned at random (`prefix_noisy` 0.5 / 1 / 2), the knob that set how much binding the
checkpoint carries into the group syntax (pretrain_synthetic.py's docstring, variants F, G, H). V1 is
the committed recipe (G), rerun as the control. Never judged by any active-learning strategy:
regime_check trains on uniformly random subsets only.

Selection rule (fixed before running): among the variants that pass every criterion (C1-C5), the
one with the fewest parameters (the CPU cost of every experiment grows with it), then the fewest
pretraining steps, then the lowest number. If none passes every criterion, the committed checkpoint
stays, and the table is the report.
"""

import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from mmal_jax import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BASE = dict(width=64, depth=2, prefix_noisy=2.0, epochs=10, num_pairs=30000)
# name -> overrides of _BASE. Kind weights: single, one_color, unbound, same_shape, postfix 1,1,1,0,2
# and prefix_noisy as given (synthetic.PRETRAINING_KINDS).
VARIANTS = collections.OrderedDict(
    V1=dict(),
    V2=dict(prefix_noisy=1.0),
    V3=dict(prefix_noisy=0.5),
    V4=dict(epochs=20),
    V5=dict(prefix_noisy=1.0, epochs=20),
    V6=dict(num_pairs=60000),
    V7=dict(width=128),
    V8=dict(width=128, prefix_noisy=1.0),
    V9=dict(width=128, prefix_noisy=0.5),
    V10=dict(width=128, epochs=20),
    V11=dict(width=128, prefix_noisy=1.0, epochs=20),
    V12=dict(width=128, num_pairs=60000),
)

_OUT_DIR = _PHASE = _VARIANTS = _JOBS = _SEEDS = _RESULTS = None


def define_flags():
  """Defined only when run as a script, as the other CLIs (importing it defines no flag that could
  collide with regime_check's or claims' `seeds`, `results`)."""
  global _OUT_DIR, _PHASE, _VARIANTS, _JOBS, _SEEDS, _RESULTS
  _OUT_DIR = flags.DEFINE_string("out_dir", None, "Where each variant's directory goes.")
  _PHASE = flags.DEFINE_enum("phase", "all", ["all", "data", "train", "report"], "What to run.")
  _VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "Which variants.")
  _JOBS = flags.DEFINE_integer("jobs", 12, "Variants run at once.")
  _SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3"], "regime_check's seeds.")
  _RESULTS = flags.DEFINE_string(
      "results",
      os.path.join(ROOT, "experiments", "results", "pretrain_sweep.json"),
      "Where the report's JSON goes too (besides DIR/sweep.json).",
  )


def settings(name):
  s = dict(_BASE, **VARIANTS[name])
  s["kind_weights"] = (1.0, 1.0, 1.0, 0.0, 2.0, float(s.pop("prefix_noisy")))
  return s


def _corpus(spec):
  from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  num_pairs, kinds = spec
  start = time.perf_counter()
  synthetic.pretraining_corpus(seed=0, num_pairs=num_pairs, image_size=32, kind_weights=kinds)
  return f"corpus {num_pairs} {kinds}: {time.perf_counter() - start:.0f}s"


def make_corpora(names):
  """Every distinct corpus of `names`, one process each, and the default pool and test split, into
  the cache (what pretrain_synthetic.py and regime_check.py then read)."""
  from mmal_jax import data  # pylint: disable=g-import-not-at-top
  from mmal_jax import defaults  # pylint: disable=g-import-not-at-top
  from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  specs = sorted({(settings(n)["num_pairs"], settings(n)["kind_weights"]) for n in names})
  with concurrent.futures.ProcessPoolExecutor(len(specs)) as pool:
    for line in pool.map(_corpus, specs):
      print(line, flush=True)
  data.load_dataset(defaults.colorswap_experiment().data, image_size=32)
  synthetic.colorswap_like(seed=0, num_train_groups=1, image_size=32)  # pretrain_synthetic's test


def _commands(name, out_dir):
  s, vdir = settings(name), os.path.join(out_dir, name)
  pretrain = [
      sys.executable, "-m", "experiments.pretrain_synthetic", f"--out_dir={vdir}",
      f"--width={s['width']}", f"--depth={s['depth']}", f"--epochs={s['epochs']}",
      f"--num_pairs={s['num_pairs']}", "--kind_weights=" + ",".join(map(str, s["kind_weights"])),
  ]  # fmt: skip
  regime = [
      sys.executable, "-m", "experiments.regime_check",
      f"--config={ROOT}/configs/siglip_colorswap.py:{vdir}/pretrained_tiny.npz",
      f"--seeds={','.join(_SEEDS.value)}", f"--out={vdir}/regime.json",
  ]  # fmt: skip
  return vdir, pretrain, regime


def train_all(names, out_dir, jobs):
  """Runs pretrain + regime_check per variant, `jobs` at once; logs in DIR/<name>/log.txt."""
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
  pending, running = list(names), {}
  while pending or running:
    while pending and len(running) < jobs:
      name = pending.pop(0)
      vdir, pretrain, regime = _commands(name, out_dir)
      os.makedirs(vdir, exist_ok=True)
      script = " && ".join(subprocess.list2cmdline(c) for c in (pretrain, regime))
      log = open(os.path.join(vdir, "log.txt"), "w")  # pylint: disable=consider-using-with
      running[name] = (
          subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=log, stderr=log),
          log,
          time.perf_counter(),
      )
    time.sleep(2)
    for name, (proc, log, start) in list(running.items()):
      if proc.poll() is not None:
        log.close()
        del running[name]
        print(
            f"{name}: exit {proc.returncode} after {time.perf_counter() - start:.0f}s", flush=True
        )


def report(names, out_dir):
  """The table (printed, and DIR/sweep.json) and the variant the selection rule picks."""
  rows = []
  for name in names:
    vdir = os.path.join(out_dir, name)
    row = dict(name=name, **settings(name))
    try:
      with open(os.path.join(vdir, "pretrained_tiny.json")) as f:
        meta = json.load(f)
      with open(os.path.join(vdir, "regime.json")) as f:
        regime = json.load(f)
    except (OSError, ValueError) as e:
      row["missing"] = str(e)
      rows.append(row)
      continue
    row.update(
        num_params=meta["num_params"],
        steps=meta["steps"],
        final_loss=meta["final_loss"],
        pretrain_seconds=meta["seconds"]["train"],
        criteria={
            c["name"]: dict(measured=c["measured"], passed=c["passed"]) for c in regime["criteria"]
        },
        group={k: v["group"] for k, v in regime["summary"].items()},
        pseudo_align={k: v["pseudo_align_acc"] for k, v in regime["summary"].items()},
        device=regime["device"],
    )
    row["passes"] = sum(c["passed"] for c in row["criteria"].values())
    rows.append(row)
  done = [r for r in rows if "criteria" in r]
  winners = sorted(
      (r for r in done if r["passes"] == len(r["criteria"])),
      key=lambda r: (r["num_params"], r["steps"], int(r["name"][1:])),
  )
  chosen = winners[0]["name"] if winners else None
  header = "| variant | width | corpus | prefix_noisy | epochs | loss | pretrained group | 5% | 30% | pseudo-align 0 / 30% | passes |"
  print(header)
  print("|" + "---|" * (header.count("|") - 1))
  for r in rows:
    if "criteria" not in r:
      print(f"| {r['name']} | missing: {r['missing']} |")
      continue
    g, p = r["group"], r["pseudo_align"]
    fails = [k for k, c in r["criteria"].items() if not c["passed"]]
    print(
        f"| {r['name']} | {r['width']} | {r['num_pairs']} | {r['kind_weights'][5]:g} | {r['epochs']}"
        f" | {r['final_loss']:.3f} | {g['0.0']['mean']:.3f} | {g['0.05']['mean']:.3f} +- "
        f"{g['0.05']['se']:.3f} | {g['0.3']['mean']:.3f} +- {g['0.3']['se']:.3f} |"
        f" {p['0.0']['mean']:.3f} / {p['0.3']['mean']:.3f} | {r['passes']}/6"
        + (f" (fails {', '.join(fails)})" if fails else "")
        + " |"
    )
  print(f"selection rule picks: {chosen or 'none (the committed checkpoint stays)'}")
  out = dict(variants=rows, chosen=chosen, rule=__doc__.split("Selection rule")[1].strip())
  for path in (os.path.join(out_dir, "sweep.json"), _RESULTS.value):
    files.write_text(path, json.dumps(out, indent=2) + "\n")
  return out


def main(argv):
  del argv
  if not _OUT_DIR.value:
    raise app.UsageError("--out_dir is required")
  unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
  if unknown:
    raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
  names = [n for n in VARIANTS if n in _VARIANTS.value]
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  if _PHASE.value in ("all", "data"):
    make_corpora(names)
  if _PHASE.value in ("all", "train"):
    train_all(names, _OUT_DIR.value, _JOBS.value)
  if _PHASE.value in ("all", "train", "report"):
    report(names, _OUT_DIR.value)


if __name__ == "__main__":
  define_flags()
  app.run(main)
