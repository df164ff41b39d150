"""notebooks/quickstart.ipynb runs top to bottom in a fresh kernel, and is committed without
outputs."""

import json
import os
import subprocess
import sys
import types

import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def test_the_committed_notebook_has_no_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code, "the notebook has no code cells"
  dirty = [
      i
      for i, c in enumerate(nb.cells)
      if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
  ]
  assert not dirty, (
      f"cells {dirty} of {NOTEBOOK} carry outputs; clear them before committing "
      "(Jupyter: Edit > Clear outputs of all cells; or see the README)"
  )


def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  # The kernel is a fresh process that inherits this environment: one CPU device, as a user's
  # session has (conftest.py gives the tests 8 virtual ones), and a data cache of its own.
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setenv("MMAL_JAX_CACHE", str(tmp_path / "cache"))
  # A kernel spec of this interpreter under a name of its own, so that a "python3" kernel
  # installed elsewhere on the machine (another Python, without mmal_jax) cannot be picked.
  spec = tmp_path / "jupyter" / "kernels" / "mmal_jax_test"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(
      json.dumps(
          dict(
              argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
              display_name="mmal_jax test",
              language="python",
          )
      )
  )
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  client = nbclient.NotebookClient(
      nb, timeout=600, kernel_name="mmal_jax_test", resources={"metadata": {"path": str(tmp_path)}}
  )
  client.execute()  # raises CellExecutionError (the failing cell's source and traceback)


def _install_cell():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  return next(c.source for c in nb.cells if c.cell_type == "code")


def test_the_install_cell_in_colab_installs_the_given_source_or_the_uploaded_wheel(
    tmp_path, monkeypatch
):
  """The first cell, run as Colab runs it (google.colab importable, cwd holding the uploads), with
  pip replaced by a recorder: SOURCE wins; else the last uploaded wheel by name; else one clear
  error."""
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args[-1]))
  monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  monkeypatch.chdir(tmp_path)
  source = _install_cell()
  with pytest.raises(RuntimeError, match="set SOURCE .* or upload mmal_jax-"):
    exec(source, {})  # pylint: disable=exec-used
  assert calls == []
  for name in ("mmal_jax-0.1.0-py3-none-any.whl", "mmal_jax-0.2.0-py3-none-any.whl"):
    (tmp_path / name).write_bytes(b"")
  exec(source, {})  # pylint: disable=exec-used
  url = "git+https://example.org/me/mmal_jax.git"
  exec(source.replace('SOURCE = ""', f'SOURCE = "{url}"'), {})  # pylint: disable=exec-used
  assert calls == ["mmal_jax-0.2.0-py3-none-any.whl", url]


def test_the_install_cell_does_nothing_outside_colab(monkeypatch):
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
  monkeypatch.delitem(sys.modules, "google.colab", raising=False)
  exec(_install_cell(), {})  # pylint: disable=exec-used
  assert calls == []
