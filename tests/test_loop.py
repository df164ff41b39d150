"""The loop end to end on a tiny config: outputs, budget accounting, streaming, finished reruns, and
resume after a real SIGKILL giving the same metrics as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from mmal_jax import experiment
from mmal_jax import logs
from mmal_jax import loop
from mmal_jax.annotation import unaligned as unaligned_lib
from mmal_jax.training import checkpoints
from configs import siglip_colorswap
import run_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(
    num_train_groups=20,
    num_test_groups=4,
    per_round=4,
    rounds=2,
    coreset_size=8,
    epochs=1,
    batch_size=8,
)
FLAGS = [
    *run_helpers.TINY_FLAGS,
    "--config.embed_batch_size=32",
    "--config.strategies=('ours','random')",
]


def _tiny_config():
  config = siglip_colorswap.get_config()
  config.data.update(
      num_train_groups=TINY["num_train_groups"], num_test_groups=TINY["num_test_groups"]
  )
  config.update(
      per_round=TINY["per_round"],
      rounds=TINY["rounds"],
      coreset_size=TINY["coreset_size"],
      strategies=("ours", "random"),
      embed_batch_size=32,
  )
  config.train.update(epochs=TINY["epochs"], batch_size=TINY["batch_size"])
  return config


def _without_timings(records):
  return [{k: v for k, v in r.items() if k not in logs.TIMING_KEYS} for r in records]


def _read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """One uninterrupted in-process run of the tiny config; its data and compiled programs are
  cached where the CLI subprocesses of the other tests look for them (as main.py sets up)."""
  yield from run_helpers.reference_run(tmp_path_factory, _tiny_config())


def test_uninterrupted_run(reference):
  workdir, records, _ = reference
  pool = 2 * TINY["num_train_groups"]
  assert [(r["strategy"], r["round"]) for r in records] == [
      (s, k) for s in ("ours", "random") for k in range(3)
  ]
  for r in records:
    assert r["num_queried"] == TINY["per_round"] * r["round"]
    assert r["num_pairs"] == r["num_queried"]  # no missing data: every query is answered
    assert r["percent_annotated"] == pytest.approx(100.0 * r["num_queried"] / pool)
    for key in ("text", "image", "group", "groupmatch"):
      assert 0.0 <= r[key] <= 1.0
    assert r["group"] <= min(r["text"], r["image"])
    assert r["modality"] in (("none",) if r["round"] == 0 else ("image", "text", "image+text"))
  # Round 0 is the pretrained model: the same for every strategy.
  # (Compared as JSON, where NaN, e.g. a margin with no correct pseudo-alignment, equals NaN.)
  same = [json.dumps(_without_timings([records[k]])[0] | {"strategy": "x"}) for k in (0, 3)]
  assert same[0] == same[1]
  assert _read_metrics(workdir) == json.loads(json.dumps(records).replace("NaN", "null"))
  for name in ("config.json", "curves.png", "summary.md", "tensorboard"):
    assert os.path.exists(os.path.join(workdir, name)), name


def test_finished_workdir_is_not_recomputed(reference):
  workdir, records, cache = reference
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "mmal_jax.main",
          "--config=configs/siglip_colorswap.py",
          f"--workdir={workdir}",
          *FLAGS,
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, MMAL_JAX_CACHE=cache),
  )
  assert proc.returncode == 0, proc.stderr
  assert "already holds this finished run" in proc.stdout
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before
  assert _without_timings(_read_metrics(workdir)) == _without_timings(
      json.loads(json.dumps(records).replace("NaN", "null"))
  )


def test_resume_after_sigkill_matches_uninterrupted(reference, tmp_path):
  ref_dir, _, cache = reference
  workdir = str(tmp_path / "run")
  cmd = [
      sys.executable,
      "-m",
      "mmal_jax.main",
      "--config=configs/siglip_colorswap.py",
      f"--workdir={workdir}",
      *FLAGS,
  ]
  env = dict(os.environ, MMAL_JAX_CACHE=cache)
  proc = subprocess.Popen(
      cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
  )
  progress = 0
  for line in proc.stdout:  # kill in the middle of the first run (after its round 1)
    progress += "rounds, ETA" in line
    if progress == 2:
      os.kill(proc.pid, signal.SIGKILL)
      break
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  done_before = len(_read_metrics(workdir))
  assert 2 <= done_before < 6
  resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  assert resumed.stdout.count("rounds, ETA") == 6 - done_before  # nothing redone
  assert _without_timings(_read_metrics(workdir)) == _without_timings(_read_metrics(ref_dir))


def test_stream_picks_only_from_the_current_buffer(tmp_path, reference):
  del reference  # only for its data cache
  config = _tiny_config()
  config.strategies = ("ours",)
  config.stream.buffer_size = 12
  records = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert [r["num_queried"] for r in records] == [0, 4, 8]
  ckpt = checkpoints.Checkpointer(str(tmp_path / "run" / "checkpoints"))
  _, state = ckpt.restore(ckpt.latest_step(), experiment.setup(config).pretrained)
  ckpt.close()
  pool = 2 * TINY["num_train_groups"]
  view = unaligned_lib.make_unaligned(pool, seed=0)
  buffers = list(unaligned_lib.stream_buffers(pool, 12, seed=0))
  log = {k: np.asarray(v) for k, v in state["log"].items()}
  rows = np.array([view.rows[m][i] for m, i in zip(log["modality"], log["item"])])
  assert len(np.unique(rows)) == 8  # the oracle log: 8 distinct source pairs bought
  for rnd in (1, 2):
    assert np.isin(rows[4 * (rnd - 1) : 4 * rnd], buffers[rnd - 1]).all()


def test_each_item_is_embedded_once_per_round(tmp_path, reference, monkeypatch):
  del reference  # only for its data cache
  config = _tiny_config()
  config.strategies = ("ours",)
  calls, embed = [], loop._embed

  def counting_embed(exp, params, unaligned, modality, ids):
    calls.append((params, modality, np.asarray(ids)))  # holds params, so their id()s stay unique
    return embed(exp, params, unaligned, modality, ids)

  monkeypatch.setattr(loop, "_embed", counting_embed)
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  per_round = {}
  for params, modality, ids in calls:
    per_round.setdefault(id(params), [[], []])[modality].append(ids)
  items = 2 * TINY["num_train_groups"]
  # Rounds 0 and 1: the margin analysis and the next round's acquisition read every item (visible
  # or annotated); round 2, the last, only the margin analysis's visible items.
  want = [items, items, items - 2 * TINY["per_round"]]
  assert len(per_round) == TINY["rounds"] + 1
  for (image_ids, text_ids), n in zip(per_round.values(), want):
    for ids in (np.concatenate(image_ids), np.concatenate(text_ids)):
      assert len(ids) == len(np.unique(ids)) == n


def test_buy_skips_partners_revealed_this_round():
  from mmal_jax.annotation.oracle import Oracle, Queries  # pylint: disable=g-import-not-at-top

  perm = np.array([2, 0, 3, 1])  # text k pairs with image perm[k]
  img_partner = np.argsort(perm)
  oracle = Oracle((img_partner, perm))
  # Candidates, best first: image 2, then text 0 = image 2's partner, then text 3, image 0.
  queries = Queries(modality=np.array([0, 1, 1, 0]), item=np.array([2, 0, 3, 0]), budget=2)
  answers = oracle.answer(queries)
  assert answers.modalities() == "image+text"
  log = oracle.log
  np.testing.assert_array_equal(log["modality"], [0, 1])
  np.testing.assert_array_equal(log["item"], [2, 3])  # text 0 skipped unpaid; text 3 took its slot
  np.testing.assert_array_equal(answers.item, [2, 3])
  np.testing.assert_array_equal(answers.partner, [img_partner[2], perm[3]])
  assert oracle.spent == 2


def test_round_api_by_hand_matches_the_driver(reference):
  _, records, _ = reference
  exp = experiment.setup(_tiny_config())
  state = loop.start(exp, 0)
  first = loop.propose(exp, state)
  again = loop.propose(exp, state)  # no side effects: the same queries, the state untouched
  np.testing.assert_array_equal(first.item, again.item)
  np.testing.assert_array_equal(first.modality, again.modality)
  assert state.round == 0 and len(state.log) == 0
  answers = loop.simulated_annotator(exp, state).answer(first)
  assert len(answers) == TINY["per_round"]
  nxt = loop.learn(exp, state, answers)
  assert nxt.round == 1 and len(nxt.log) == TINY["per_round"] and len(state.log) == 0
  assert json.dumps(_without_timings(list(nxt.records))) == json.dumps(
      _without_timings(records[:2])
  )
  with pytest.raises(ValueError, match="already bought"):
    loop.learn(exp, nxt, answers)


def test_round_0_is_measured_once_per_seed_and_reused_unchanged(reference, monkeypatch):
  _, records, _ = reference
  exp = experiment.setup(_tiny_config())
  assert exp.runs[1] == ("random", 0) and records[3]["strategy"] == "random"
  # Random's round 0 measured on its own (no earlier records) is what the driver wrote after
  # reusing ours' round 0.
  fresh = loop.start(exp, 1).records[-1]
  assert json.dumps(fresh) == json.dumps(records[3])
  calls, evaluate = [], loop._evaluate
  monkeypatch.setattr(loop, "_evaluate", lambda *args: calls.append(1) or evaluate(*args))
  state = loop.start(exp, 1, records[:3])
  assert not calls and json.dumps(state.records[-1]) == json.dumps(records[3])
  loop.start(exp, 0)  # nothing earlier of seed 0: measured
  assert len(calls) == 1
