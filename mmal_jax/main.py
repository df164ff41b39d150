r"""Runs the active-learning experiment of a config file.

  python -m mmal_jax.main --config=configs/siglip_colorswap.py [--workdir=DIR] [--config.seeds=0,1]

The work directory (default: runs/<config file name>) receives config.json, metrics.jsonl,
tensorboard/, curves.png, summary.md and checkpoints/; rerunning the same command resumes a killed
run or reports a finished one. Bad input prints one line `error: ...` and exits with status 2.
"""

import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from mmal_jax import experiment
from mmal_jax import files
from mmal_jax import host_memory
from mmal_jax import loop
from mmal_jax import mesh


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
# Multi-host launch (README "Scale"): the topology of this launch, not part of the experiment, so
# it stays out of the config (and of config.json, which a resumed run must match).
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-host: host:port of process 0; starts jax.distributed (also MMAL_JAX_DISTRIBUTED=1).",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process, 0..N-1.")


class UsageError(ValueError):
  """A bad command line: reported as one line, exit code 2."""


def _bad_flag(e):
  return UsageError(
      f"bad command line ({str(e).splitlines()[0]}); fields are set as " "--config.field=value"
  )


def _config_path(argv):
  """The config file named on a command line (the last --config wins, as in absl), or None."""
  path = None
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      path = arg[len("--config=") :]
    elif arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
  return None if path is None else path.split(":", 1)[0]


def _while_loading_config(e) -> bool:
  """Whether `e` (or an exception it wraps) was raised while the config file was imported or its
  get_config() ran, rather than while a --config.field override was parsed."""
  while e is not None:
    tb = e.__traceback__
    while tb is not None:
      code = tb.tb_frame.f_code
      # ConfigFileFlagParser.parse(self, path) imports the file and calls get_config().
      if (
          code.co_name == "parse"
          and code.co_filename.endswith("config_flags.py")
          and code.co_varnames[1:2] == ("path",)
      ):
        return True
      tb = tb.tb_next
    e = e.__cause__ or e.__context__
  return False


def _load_error(e, path) -> UsageError:
  """One line naming the config file, what failed in it and where (a file that fails to import,
  raises in get_config, or has none)."""
  while e.__cause__ or e.__context__:  # absl and config_flags re-raise; the first one says what
    e = e.__cause__ or e.__context__
  line = None
  if isinstance(e, AttributeError) and "get_config" in str(e):
    return UsageError(
        f"config file {path} defines no get_config(); define one returning a ConfigDict"
    )
  if isinstance(e, SyntaxError):
    what = f"SyntaxError: {e.msg}"
    line = e.lineno if e.filename and os.path.abspath(e.filename) == os.path.abspath(path) else None
  else:
    what = f"{type(e).__name__}: {' '.join(str(e).split())}" if str(e) else type(e).__name__
    tb = e.__traceback__
    while tb is not None:
      if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
        line = tb.tb_lineno
      tb = tb.tb_next
  where = f" (line {line})" if line else ""
  return UsageError(
      f"cannot load config file {path}{where}: {what}; fix the file or pass another --config"
  )


def _flag_error(e, argv) -> UsageError:
  """The UsageError of an exception raised while parsing a command line."""
  path = _config_path(argv)
  if path is not None and _while_loading_config(e):
    return _load_error(e, path)
  return _bad_flag(e)


def _resolve(config_flag, workdir_flag, argv, flag_values):
  """(config, workdir) of parsed flags; raises UsageError."""
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}; pass settings as --config.field=value")
  config = config_flag.value
  if config is None and not flag_values["config"].present:
    raise UsageError("--config is required, e.g. --config=configs/siglip_colorswap.py")
  try:
    getattr(config, "keys", None)  # an _ErrorConfig raises here
  except OSError as e:  # config_flags defers a config file that failed to load until it is read
    path = config_flags.get_config_filename(flag_values["config"])
    if not os.path.isfile(path):
      raise UsageError(
          f"config file {path} does not exist; pass --config=configs/<name>.py"
      ) from None
    raise _load_error(e, path) from None
  name = config_flags.get_config_filename(flag_values["config"])
  if not isinstance(config, ml_collections.ConfigDict):
    raise UsageError(
        f"cannot load config file {name}: get_config() returned {type(config).__name__}, not an "
        "ml_collections.ConfigDict; return one (see configs/siglip_colorswap.py)"
    )
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
  except Exception as e:  # pylint: disable=broad-except  # a config file may raise anything
    raise _flag_error(e, argv) from None
  return _resolve(config, workdir, rest, flag_values)


def _fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _parse_flags(argv):
  """absl's parser, but a bad flag or a config file that fails to load is one line and exit code 2."""
  # absl logs config_flags' warnings (e.g. "get_config() returned None") to stderr before the
  # flags are parsed; the one error line below says it all.
  logging.set_verbosity(logging.ERROR)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  # a config file may raise anything
    _fail(_flag_error(e, argv))


def _quiet_background_errors():
  """Orbax's failed reads and writes (a full disk, a damaged checkpoint) come back to the loop as
  the exception of save or restore, which is reported as one line; the tracebacks its background
  threads also log (absl ERROR records, asyncio's "Future exception was never retrieved" and
  "Event loop is closed" from callbacks that outlive their loop) would bury that line."""

  def not_orbax_error(record):
    return record.levelno < std_logging.ERROR or f"{os.sep}orbax{os.sep}" not in record.pathname

  logging.get_absl_handler().addFilter(not_orbax_error)
  std_logging.getLogger("asyncio").setLevel(std_logging.CRITICAL)
  default_hook = sys.unraisablehook

  def hook(unraisable):
    if not (
        isinstance(unraisable.exc_value, RuntimeError)
        and "Event loop is closed" in str(unraisable.exc_value)
    ):
      default_hook(unraisable)

  sys.unraisablehook = hook


def main(argv):
  try:
    config, workdir = _resolve(_CONFIG, _WORKDIR, argv, flags.FLAGS)
  except UsageError as e:
    _fail(e)
  logging.set_verbosity(
      logging.WARNING
  )  # orbax logs every save at INFO; the progress lines suffice
  _quiet_background_errors()
  # Compiled programs persist across processes: a resumed run, or the next config, skips the
  # compiles (tens of seconds on a small CPU) that dominate short experiments.
  jax.config.update("jax_compilation_cache_dir", os.path.join(files.default_cache_dir(), "jax"))
  try:
    # Before any device work: multi-host runs start jax.distributed here (README "Scale").
    mesh.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    loop.train_and_evaluate(config, workdir)
  except experiment.ConfigError as e:
    _fail(e)
  except loop.RunError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # A failed orbax save (e.g. on a file system turned read-only) leaves non-daemon threads
    # waiting for signals that never come, so a normal exit would hang at interpreter shutdown.
    # Everything of the run is on disk or safely discarded (the lock is the kernel's), so leave now.
    os._exit(2)  # pylint: disable=protected-access


if __name__ == "__main__":
  host_memory.reuse_freed_memory()  # before the first JAX computation starts XLA's threads
  app.run(main, flags_parser=_parse_flags)
