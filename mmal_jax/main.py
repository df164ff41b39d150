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


def define_flags(flag_values, argv=None):
  """Defines --config and --workdir on `flag_values`; returns their FlagHolders. `argv`: the
  command line whose --config.field overrides to define (default: sys.argv)."""
  config = config_flags.DEFINE_config_file(
      "config",
      None,
      "Experiment config file (configs/*.py).",
      flag_values=flag_values,
      lock_config=True,
      sys_argv=argv,
  )
  workdir = flags.DEFINE_string(
      "workdir", None, "Output directory; default runs/<config file name>.", flag_values=flag_values
  )
  return config, workdir


_CONFIG, _WORKDIR = define_flags(flags.FLAGS)


class UsageError(ValueError):
  """A bad command line: reported as one line, exit code 2."""


def _bad_flag(e):
  return UsageError(
      f"bad command line ({str(e).splitlines()[0]}); fields are set as " "--config.field=value"
  )


def _resolve(config_flag, workdir_flag, argv, flag_values):
  """(config, workdir) of parsed flags; raises UsageError."""
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}; pass settings as --config.field=value")
  config = config_flag.value
  if config is None:
    raise UsageError("--config is required, e.g. --config=configs/siglip_colorswap.py")
  try:
    config.keys()
  except OSError as e:  # config_flags defers a config file that failed to load until it is read
    raise UsageError(f"cannot load --config: {' '.join(str(e).split())}") from None
  name = config_flags.get_config_filename(flag_values["config"])
  return config, workdir_flag.value or os.path.join(
      "runs", os.path.splitext(os.path.basename(name))[0]
  )


def parse(argv):
  """(config, workdir) of a command line, argv[0] being the program, parsed on fresh flags exactly
  as `python -m mmal_jax.main` parses it (tests and notebooks). Raises UsageError."""
  flag_values = flags.FlagValues()
  config, workdir = define_flags(flag_values, list(argv))
  try:
    rest = flag_values(argv)
  except (flags.Error, AttributeError, KeyError) as e:  # config_flags: unknown --config.field
    raise _bad_flag(e) from None
  return _resolve(config, workdir, rest, flag_values)


def _fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _parse_flags(argv):
  """absl's parser, but a bad flag (e.g. a missing config file) is one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError) as e:  # config_flags: unknown --config.field
    _fail(_bad_flag(e))


def main(argv):
  try:
    config, workdir = _resolve(_CONFIG, _WORKDIR, argv, flags.FLAGS)
  except UsageError as e:
    _fail(e)
  logging.set_verbosity(
      logging.WARNING
  )  # orbax logs every save at INFO; the progress lines suffice
  # Compiled programs persist across processes: a resumed run, or the next config, skips the
  # compiles (tens of seconds on a small CPU) that dominate short experiments.
  jax.config.update("jax_compilation_cache_dir", os.path.join(files.default_cache_dir(), "jax"))
  try:
    loop.train_and_evaluate(config, workdir)
  except experiment.ConfigError as e:
    _fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
