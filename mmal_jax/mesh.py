"""The one data-parallel device mesh: built once from the config (`experiment.setup`) and handed to
training and embedding, which shard their batches along its "data" axis."""

import jax
import numpy as np


def data_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """Mesh(("data",)) over the first `num_devices` local devices (0: all of them).

  Raises ValueError when more devices are asked for than this process has.
  """
  devices = jax.local_devices()
  if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 0:
    raise ValueError(f"num_devices={num_devices!r} must be an int >= 0 (0: every local device)")
  if num_devices > len(devices):
    raise ValueError(
        f"num_devices={num_devices} but this process has {len(devices)} local devices;"
        " lower it, or 0 for all of them"
    )
  return jax.sharding.Mesh(np.array(devices[: num_devices or None]), ("data",))


def of_devices(devices=None) -> jax.sharding.Mesh:
  """Mesh(("data",)) over `devices` (a sequence of jax.Device), or over all local devices."""
  if devices is None:
    return data_mesh()
  return jax.sharding.Mesh(np.array(list(devices)), ("data",))
