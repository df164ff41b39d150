"""Helpers shared by the tests that drive whole runs (in process and through the CLI)."""

import os

import jax

from mmal_jax import loop

# The tiny run every CLI test appends to the default config: a 40-pair pool, 2 rounds of 4, 1 epoch.
TINY_FLAGS = [
    "--config.data.num_train_groups=20",
    "--config.data.num_test_groups=4",
    "--config.per_round=4",
    "--config.rounds=2",
    "--config.coreset_size=8",
    "--config.train.epochs=1",
    "--config.train.batch_size=8",
]


def one_error_line(proc):
  """The one `error: ...` line of a CLI process that must have failed with exit status 2."""
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  return lines[0]


def reference_run(tmp_path_factory, config):
  """Yields (workdir, records, cache dir) of one uninterrupted in-process run of `config`, its data
  and compiled programs cached where the CLI subprocesses of the tests look for them (as main.py
  sets them up); restores the environment afterwards. For a module-scoped fixture."""
  cache = tmp_path_factory.mktemp("cache")
  saved = os.environ.get("MMAL_JAX_CACHE"), jax.config.jax_compilation_cache_dir
  os.environ["MMAL_JAX_CACHE"] = str(cache)
  jax.config.update("jax_compilation_cache_dir", str(cache / "jax"))
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  try:
    records = loop.train_and_evaluate(config, workdir)
    yield workdir, records, str(cache)
  finally:
    jax.config.update("jax_compilation_cache_dir", saved[1])
    if saved[0] is None:
      os.environ.pop("MMAL_JAX_CACHE")
    else:
      os.environ["MMAL_JAX_CACHE"] = saved[0]
