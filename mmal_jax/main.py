r"""Runs the active-learning experiment of a config file.

  python -m mmal_jax.main --config=configs/siglip_colorswap.py [--workdir=DIR] [--config.seeds=0,1]

The work directory (default: runs/<config file name>) receives config.json, metrics.jsonl,
tensorboard/, curves.png, summary.md and checkpoints/; rerunning the same command resumes a killed
run or reports a finished one. Bad input prints one line `error: ...` and exits with status 2.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from mmal_jax import experiment
from mmal_jax import files
from mmal_jax import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory; default runs/<config file name>.")


def _fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _parse_flags(argv):
  """absl's parser, but a bad flag (e.g. a missing config file) is one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError) as e:  # config_flags: unknown --config.field
    _fail(f"bad command line ({str(e).splitlines()[0]}); fields are set as --config.field=value")


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; pass settings as --config.field=value")
  config = _CONFIG.value
  if config is None:
    _fail("--config is required, e.g. --config=configs/siglip_colorswap.py")
  try:
    config.keys()
  except OSError as e:  # config_flags defers a config file that failed to load until it is read
    _fail(f"cannot load --config: {' '.join(str(e).split())}")
  workdir = _WORKDIR.value or os.path.join(
      "runs", os.path.splitext(os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"])))[0])
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; the progress lines suffice
  # Compiled programs persist across processes: a resumed run, or the next config, skips the
  # compiles (tens of seconds on a small CPU) that dominate short experiments.
  jax.config.update("jax_compilation_cache_dir", os.path.join(files.default_cache_dir(), "jax"))
  try:
    loop.train_and_evaluate(config, workdir)
  except experiment.ConfigError as e:
    _fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
