"""Orbax checkpoints of a pytree of arrays plus a JSON-able state dict, one per step.

Orbax writes each step into a temporary directory and renames it when complete, so a process killed
mid-save leaves the previous step as the latest one; `save` blocks until the step is final.
"""

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Keeps the last `max_to_keep` steps of (arrays, state) under `directory`."""

  def __init__(self, directory, *, max_to_keep=2):
    self._manager = ocp.CheckpointManager(
        directory,
        item_names=("arrays", "state"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )

  def latest_step(self):
    """The newest complete step, or None."""
    return self._manager.latest_step()

  def save(self, step, arrays, state):
    """Saves `arrays` (pytree of arrays) and `state` (JSON-able dict) as `step`; returns when on disk."""
    self._manager.save(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardSave(arrays), state=ocp.args.JsonSave(state)
        ),
    )
    self._manager.wait_until_finished()

  def restore(self, step, like):
    """Returns (arrays, state) of `step`; `like` is a pytree with the arrays' shapes and dtypes."""
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
