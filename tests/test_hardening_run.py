"""A run's edges: two processes on one work directory, damaged checkpoints, a full disk, diverging
training. Every case ends in one clear error or an exact resume (records equal to an uninterrupted
run's, timings aside)."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from mmal_jax import files
from mmal_jax import logs
from mmal_jax import loop
from mmal_jax.training import checkpoints
from mmal_jax.training import train
from configs import siglip_colorswap
import run_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = [
    *run_helpers.TINY_FLAGS,
    "--config.embed_batch_size=32",
    "--config.strategies=('ours',)",
]


def _config(**train):
  config = siglip_colorswap.get_config()
  config.data.update(num_train_groups=20, num_test_groups=4)
  config.update(per_round=4, rounds=2, coreset_size=8, strategies=("ours",), embed_batch_size=32)
  config.train.update(epochs=1, batch_size=8, **train)
  return config


def _strip(records):
  return [
      json.loads(json.dumps({k: v for k, v in r.items() if k not in logs.TIMING_KEYS}))
      for r in records
  ]


def _cli(workdir, cache):
  return subprocess.run(
      [sys.executable, "-m", "mmal_jax.main", "--config=configs/siglip_colorswap.py"]
      + [f"--workdir={workdir}", *FLAGS],
      cwd=ROOT,
      env=dict(os.environ, MMAL_JAX_CACHE=cache),
      capture_output=True,
      text=True,
      timeout=300,
  )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted in-process run of the tiny config (3 rounds); its caches are where the CLI
  subprocesses look (as main.py sets them)."""
  yield from run_helpers.reference_run(tmp_path_factory, _config())


def _holder(directory):
  """A process holding `directory`'s lock (as a run does) until killed."""
  proc = subprocess.Popen(
      [
          sys.executable,
          "-c",
          "import sys, time\nfrom mmal_jax import files\n"
          "with files.exclusive(sys.argv[1]):\n  print('held', flush=True)\n  time.sleep(300)",
          directory,
      ],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      text=True,
  )
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_second_process_refused_and_sigkilled_lock_does_not_block(reference, tmp_path):
  ref_dir, records, cache = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_dir, workdir)
  before = sorted(os.listdir(workdir))
  holder = _holder(workdir)
  try:
    line = run_helpers.one_error_line(_cli(workdir, cache))
    assert "in use by another run" in line and f"process {holder.pid}" in line, line
    with pytest.raises(loop.ConfigError, match="in use by another run"):
      loop.train_and_evaluate(_config(), workdir)
  finally:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
  assert sorted(os.listdir(workdir)) == before
  # The kernel dropped the dead holder's lock: the next run goes on (here: reports it finished).
  proc = _cli(workdir, cache)
  assert proc.returncode == 0, proc.stderr
  assert "already holds this finished run" in proc.stdout


def test_lock_is_held_during_a_run(reference, tmp_path, monkeypatch):
  del reference  # caches
  workdir = str(tmp_path / "run")
  seen = []
  real_start = loop.start

  def start(*args, **kwargs):
    with pytest.raises(files.Busy):  # a second holder in this process is refused too
      with files.exclusive(workdir):
        pass
    seen.append(True)
    return real_start(*args, **kwargs)

  monkeypatch.setattr(loop, "start", start)
  config = _config()
  config.rounds = 1
  config.per_round = 4
  loop.train_and_evaluate(config, workdir)
  assert seen == [True]
  with files.exclusive(workdir):  # released at the end
    pass


def _damage(kind, step_dir):
  biggest = max(glob.glob(f"{step_dir}/arrays/**/d/*", recursive=True), key=os.path.getsize)
  if kind == "truncated":
    with open(biggest, "r+b") as f:
      f.truncate(100)
  elif kind == "missing":
    os.remove(os.path.join(step_dir, "state", "metadata"))
  elif kind == "overwritten":
    with open(biggest, "r+b") as f:
      f.write(b"\0" * 64)
  elif kind == "half_written":  # no arrays at all
    shutil.rmtree(os.path.join(step_dir, "arrays"))
  return biggest


@pytest.mark.parametrize("kind", ["truncated", "missing", "overwritten", "half_written"])
def test_damaged_latest_checkpoint_resumes_from_last_intact_step(reference, tmp_path, kind, capsys):
  ref_dir, records, _ = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_dir, workdir)
  latest = os.path.join(workdir, "checkpoints", str(len(records)))
  assert os.path.isdir(latest)
  _damage(kind, latest)
  capsys.readouterr()
  resumed = loop.train_and_evaluate(_config(), workdir)
  out = capsys.readouterr().out
  assert (
      f"checkpoint {latest} is damaged" in out and f"resuming from step {len(records) - 1}" in out
  )
  assert "already holds" not in out and out.count("rounds, ETA") == 1  # the last round, redone
  assert _strip(resumed) == _strip(records)
  assert os.path.isdir(latest + ".damaged")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert _strip([json.loads(line) for line in f]) == _strip(records)


def test_no_intact_checkpoint_is_one_line_naming_the_file(reference, tmp_path):
  ref_dir, records, cache = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_dir, workdir)
  for step in (len(records), len(records) - 1):
    _damage("missing", os.path.join(workdir, "checkpoints", str(step)))
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  line = run_helpers.one_error_line(_cli(workdir, cache))
  newest = os.path.join(workdir, "checkpoints", str(len(records)), "state", "metadata")
  assert newest in line and "no older step is intact" in line, line
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before


def test_diverging_training_stops_naming_run_and_keeps_last_good_state(reference, tmp_path):
  del reference  # caches
  workdir = str(tmp_path / "run")
  with pytest.raises(loop.Diverged) as info:
    loop.train_and_evaluate(_config(learning_rate=1e38), workdir)
  message = str(info.value)
  assert "\n" not in message
  for words in ("round 1", "strategy 'ours'", "seed 0", "learning rate", "round 0 is the last"):
    assert words in message, message
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    assert ckpt.all_steps() == [1]  # round 0, the pretrained model
  finally:
    ckpt.close()
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert [json.loads(line)["round"] for line in f] == [0]


def test_fit_check_names_the_first_non_finite_step():
  # fit ends with this check; called directly, as a real NaN input costs a training compile.
  train_config = _config().train
  lrs = np.array([1e-4, 2e-4, 3e-4], np.float32)
  params = {"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
  with pytest.raises(
      train.Diverged, match="loss became nan at step 2 of 3, at learning rate 0.0002"
  ):
    train._check_finite(params, np.array([0.5, np.nan, np.inf], np.float32), lrs, train_config)
  bad = {"w": np.ones((2, 2), np.float32), "b": np.array([0.0, np.inf], np.float32)}
  with pytest.raises(train.Diverged, match="a parameter became NaN or inf by step 3"):
    train._check_finite(bad, np.array([0.5, 0.4, 0.3], np.float32), lrs, train_config)
  train._check_finite(params, np.array([0.5, 0.4, 0.3], np.float32), lrs, train_config)


def _mount_tmpfs(directory, size):
  if os.geteuid() != 0:
    pytest.skip("mounting a small tmpfs to fill needs root")
  os.makedirs(directory)
  proc = subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
      capture_output=True,
      text=True,
  )
  if proc.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


# The CLI, with the disk failing while round 1 trains: `fill` writes a file until the disk is full,
# `readonly` remounts it read-only.
_FAILING_CLI = """
import os, subprocess, sys, runpy
from mmal_jax import loop
real_learn, disk, how = loop.learn, sys.argv[1], sys.argv[2]
def learn(*args, **kwargs):
  state = real_learn(*args, **kwargs)
  if state.round == 1 and how == "fill":
    # Unbuffered, so that closing cannot fail on a flush (a buffered file did, once in five).
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
      while os.write(fd, bytes(1 << 16)):
        pass
    except OSError:
      pass
    os.close(fd)
  elif state.round == 1:
    subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
  return state
loop.learn = learn
sys.argv = ["main"] + sys.argv[3:]
runpy.run_module("mmal_jax.main", run_name="__main__")
"""


@pytest.mark.parametrize("how", ["fill", "readonly"])
def test_disk_full_or_read_only_mid_run_then_rerun_resumes_identically(
    reference, tmp_path, how, capsys
):
  _, records, cache = reference
  disk = str(tmp_path / "disk")
  _mount_tmpfs(disk, "16m")
  try:
    workdir = os.path.join(disk, "run")
    args = ["--config=configs/siglip_colorswap.py", f"--workdir={workdir}", *FLAGS]
    env = dict(os.environ, MMAL_JAX_CACHE=cache)
    failing = subprocess.run(
        [sys.executable, "-c", _FAILING_CLI, disk, how, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,  # (a failed orbax save once left threads that hung the exit; main exits hard)
    )
    line = run_helpers.one_error_line(failing)
    why = "No space left on device" if how == "fill" else "Read-only file system"
    assert why in line and "cannot write round 1 of 'ours' seed 0" in line, line
    assert failing.stdout.count("rounds, ETA") == 1  # round 0 was saved
    if how == "fill":
      os.remove(os.path.join(disk, "filler"))
    else:
      subprocess.run(["mount", "-o", "remount,rw", disk], check=True)
    capsys.readouterr()
    resumed = loop.train_and_evaluate(_config(), workdir)  # in-process: one interpreter less
    assert capsys.readouterr().out.count("rounds, ETA") == 2  # rounds 1 and 2, nothing redone
    assert _strip(resumed) == _strip(records)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      assert _strip(map(json.loads, f)) == _strip(records)
  finally:
    subprocess.run(["umount", disk], check=False)
