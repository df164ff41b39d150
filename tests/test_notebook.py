"""notebooks/quickstart.ipynb runs top to bottom in a fresh kernel, and is committed without
outputs."""

import json
import os
import sys

import nbclient
import nbformat

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
