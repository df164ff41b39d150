"""The CLI's bad-input paths: one line `error: ...`, exit code 2, the work directory untouched.

Validation runs before the model is trained, so each case costs one interpreter start (~seconds).
"""

import os
import subprocess
import sys

import pytest

from mmal_jax import loop
from configs import siglip_colorswap
import run_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = run_helpers.TINY_FLAGS


def _cli(*args, cache_dir, cwd=ROOT):
  env = dict(os.environ, MMAL_JAX_CACHE=str(cache_dir))
  return subprocess.run(
      [sys.executable, "-m", "mmal_jax.main", *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--config=configs/does_not_exist.py"], "does_not_exist.py"),
        (["--config=configs/siglip_colorswap.py", "--config.strategies=ours,bogus"], "bogus"),
        (["--config=configs/siglip_colorswap.py", "--config.no_such_field=1"], "no_such_field"),
        (
            ["--config=configs/siglip_colorswap.py", "--config.rounds=40", *TINY[:2]],
            "exceeds the pool",
        ),
    ],
)
def test_cli_bad_input(tmp_path, args, words):
  workdir = tmp_path / "run"
  line = run_helpers.one_error_line(
      _cli(*args, f"--workdir={workdir}", cache_dir=tmp_path / "cache")
  )
  assert words in line
  assert not workdir.exists()


def test_config_loads_from_another_directory(tmp_path):
  # The strategy check runs after the config file is imported, so reaching it proves the import
  # (of configs/ building on mmal_jax.defaults) worked outside the repository root.
  config = os.path.join(ROOT, "configs", "siglip_colorswap.py")
  line = run_helpers.one_error_line(
      _cli(
          f"--config={config}",
          "--config.strategies=ours,bogus",
          f"--workdir={tmp_path / 'run'}",
          cache_dir=tmp_path / "cache",
          cwd=tmp_path,
      )
  )
  assert "bogus" in line


def _config(**overrides):
  config = siglip_colorswap.get_config()
  config.data.update(num_train_groups=20, num_test_groups=4)
  config.update(per_round=4, rounds=2, coreset_size=8)
  for key, value in overrides.items():
    *path, leaf = key.split("__")
    target = config
    for part in path:
      target = target[part]
    target[leaf] = value
  return config


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(per_round=0), "per_round"),
        (dict(coreset_size=2), "coreset_size"),
        (dict(seeds=(0, 0)), "seeds"),
        (dict(missing_fraction=1.5), "missing_fraction"),
        (dict(model__init="/nonexistent/ckpt.npz"), "init checkpoint"),
        (dict(query_modality="sideways"), "query_modality"),
        (dict(num_devices=10**6), "num_devices"),
    ],
)
def test_bad_config_raises_before_writing(tmp_path, overrides, words):
  workdir = tmp_path / "run"
  with pytest.raises(loop.ConfigError, match=words):
    loop.train_and_evaluate(_config(**overrides), str(workdir))
  assert not workdir.exists()


def test_unreadable_checkpoint_and_unwritable_workdir(tmp_path):
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(loop.ConfigError, match="init checkpoint"):
    loop.train_and_evaluate(_config(model__init=str(garbage)), str(tmp_path / "a"))
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(loop.ConfigError, match="not a directory|not writable"):
    loop.train_and_evaluate(_config(), str(blocker / "run"))
  assert blocker.read_text() == "x" and not (tmp_path / "a").exists()


def test_foreign_workdir_refused_unharmed(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text('{"some": "other config"}')
  with pytest.raises(loop.ConfigError, match="different config"):
    loop.train_and_evaluate(_config(), str(workdir))
  assert os.listdir(workdir) == ["config.json"]
  (workdir / "config.json").unlink()
  (workdir / "notes.txt").write_text("mine")
  with pytest.raises(loop.ConfigError, match="not empty"):
    loop.train_and_evaluate(_config(), str(workdir))
  assert os.listdir(workdir) == ["notes.txt"]
