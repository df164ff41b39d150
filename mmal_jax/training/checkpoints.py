"""Orbax checkpoints of a pytree of arrays plus a JSON-able state dict, one per step.

Orbax writes each step into a temporary directory and renames it when complete, so a process killed
mid-save leaves the previous step as the latest one; `save` blocks until the step is final. Each
final step then gets a manifest (MANIFEST: every file's size and SHA-256), which `restore` checks
first, so a step damaged later (truncated, overwritten or missing files) is reported naming the file
instead of failing deep inside orbax (whose failed reads also log tracebacks from its threads).
"""

import hashlib
import json
import os

import jax
import orbax.checkpoint as ocp

from mmal_jax import files

MANIFEST = "mmal_manifest.json"


class Damaged(ValueError):
  """A saved step whose files do not match its manifest."""


def _digest(path):
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(directory):
  out = []
  for root, _, names in os.walk(directory):
    out += [os.path.relpath(os.path.join(root, n), directory) for n in names if n != MANIFEST]
  return sorted(out)


class Checkpointer:
  """Keeps the last `max_to_keep` steps of (arrays, state) under `directory`."""

  def __init__(self, directory, *, max_to_keep=2):
    self._directory = os.fspath(directory)
    self._manager = ocp.CheckpointManager(
        directory,
        item_names=("arrays", "state"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )

  def latest_step(self):
    """The newest complete step, or None."""
    return self._manager.latest_step()

  def all_steps(self):
    """Every complete step, newest first."""
    return sorted(self._manager.all_steps(), reverse=True)

  def step_path(self, step):
    """The directory of `step`."""
    return os.path.join(self._directory, str(step))

  def set_aside(self, step):
    """Renames the (damaged) directory of `step` to `<step>.damaged[.k]` next to it, where orbax
    no longer sees it, so that the step can be written again; returns the new path."""
    path = self.step_path(step)
    target, k = f"{path}.damaged", 0
    while os.path.exists(target):
      k += 1
      target = f"{path}.damaged.{k}"
    os.replace(path, target)
    self._manager.reload()
    return target

  def save(self, step, arrays, state):
    """Saves `arrays` (pytree of arrays) and `state` (JSON-able dict) as `step`; returns when on disk."""
    self._manager.save(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardSave(arrays), state=ocp.args.JsonSave(state)
        ),
    )
    self._manager.wait_until_finished()
    path = self.step_path(step)
    manifest = {
        f: [os.path.getsize(os.path.join(path, f)), _digest(os.path.join(path, f))]
        for f in _files(path)
    }
    files.write_text(os.path.join(path, MANIFEST), json.dumps(manifest, indent=0, sort_keys=True))

  def verify(self, step):
    """Raises Damaged naming the first file of `step` that is missing, of the wrong size or
    content; a step without a manifest (killed right after orbax finished it) passes."""
    path = self.step_path(step)
    try:
      with open(os.path.join(path, MANIFEST)) as f:
        manifest = json.load(f)
    except FileNotFoundError:
      return
    except (OSError, ValueError) as e:
      raise Damaged(f"{os.path.join(path, MANIFEST)} is unreadable ({e})") from None
    for name, (size, digest) in sorted(manifest.items()):
      file = os.path.join(path, name)
      if not os.path.isfile(file):
        raise Damaged(f"{file} is missing")
      if os.path.getsize(file) != size:
        raise Damaged(f"{file} has {os.path.getsize(file)} bytes, not {size} (truncated?)")
      if _digest(file) != digest:
        raise Damaged(f"{file} does not match its checksum (overwritten?)")

  def restore(self, step, like):
    """Returns (arrays, state) of `step`; `like` is a pytree with the arrays' shapes and dtypes.
    Raises Damaged (see verify) before reading a damaged step."""
    self.verify(step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    out = self._manager.restore(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardRestore(abstract), state=ocp.args.JsonRestore()
        ),
    )
    return out["arrays"], out["state"]

  def close(self):
    self._manager.close()
