"""Config files that fail to load: one line `error: ...` naming the file, exit 2, nothing written.

Each case is one interpreter start of the CLI (the config file is imported while flags are parsed,
before any model or data is built).
"""

import os
import subprocess
import sys

import pytest

from mmal_jax import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (file text, words the error line must hold besides the file name)
BAD_CONFIGS = {
    "syntax": ("def get_config(:\n  pass\n", ["SyntaxError", "line 1"]),
    "raises": (
        "def get_config():\n  raise RuntimeError('no GPU here')\n",
        ["RuntimeError: no GPU here", "line 2"],
    ),
    "raises_value": (
        "def get_config():\n  raise ValueError('bad size')\n",
        ["ValueError: bad size"],
    ),
    "import": (
        "import no_such_module_of_mmal\n",
        ["ModuleNotFoundError", "no_such_module_of_mmal"],
    ),
    "open": ("def get_config():\n  return open('/nonexistent/mmal/x')\n", ["FileNotFoundError"]),
    "not_configdict": ("def get_config():\n  return {'seeds': (0,)}\n", ["dict", "ConfigDict"]),
    "none": ("def get_config():\n  pass\n", ["NoneType", "ConfigDict"]),
    "no_get_config": ("SEEDS = (0,)\n", ["get_config"]),
}


def _write(tmp_path, case):
  path = tmp_path / f"cfg_{case}.py"
  path.write_text(BAD_CONFIGS[case][0])
  return str(path)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_cli_bad_config_file(tmp_path, case):
  path = _write(tmp_path, case)
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "mmal_jax.main", f"--config={path}", f"--workdir={workdir}"],
      cwd=ROOT,
      env=dict(os.environ, MMAL_JAX_CACHE=str(tmp_path / "cache")),
      capture_output=True,
      text=True,
      timeout=120,
  )
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  assert path in lines[0] and "Traceback" not in proc.stderr
  for word in BAD_CONFIGS[case][1]:
    assert word in lines[0], lines[0]
  assert not workdir.exists() and proc.stdout == ""


@pytest.mark.parametrize("case", ["syntax", "raises", "not_configdict", "no_get_config"])
def test_parse_raises_usage_error_naming_file(tmp_path, case):
  path = _write(tmp_path, case)
  with pytest.raises(main.UsageError) as info:
    main.parse(["main", f"--config={path}", f"--workdir={tmp_path / 'run'}"])
  assert path in str(info.value) and "\n" not in str(info.value)


def test_bad_override_is_still_a_bad_command_line(tmp_path):
  # An unknown field of a good config file is not a config-file failure.
  with pytest.raises(main.UsageError, match="bad command line.*no_such_field"):
    main.parse(["main", f"--config={ROOT}/configs/siglip_colorswap.py", "--config.no_such_field=1"])
