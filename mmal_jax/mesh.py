"""The one data-parallel device mesh: built once from the config (`experiment.setup`) and handed to
training, embedding and acquisition, which shard their arrays along its "data" axis.

Multi-host (a TPU pod slice, several GPU hosts; one process per host): `initialize` starts
jax.distributed when the command line (main.py's --coordinator_address, --num_processes,
--process_id: the launch topology, not part of the experiment's config) or the environment asks
for it, before anything touches a device. The mesh then spans every process's devices, ordered by process, so each process holds one
contiguous block of a row-sharded array: `process_rows` says which rows, and `global_rows` builds
the global array from each process's own rows (a process reads only its own shards or rows).
"""

import os

import jax
import numpy as np

# Set to 1 to call jax.distributed.initialize() with every argument auto-detected (TPU pod slices,
# SLURM, Open MPI); jax itself reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
ENV = "MMAL_JAX_DISTRIBUTED"


def initialize(coordinator_address=None, num_processes=None, process_id=None) -> bool:
  """Calls jax.distributed.initialize when asked to; returns whether this run is multi-process.

  Asked to by a coordinator_address ("host:port" of process 0; None arguments are auto-detected
  by jax: SLURM, Open MPI, TPU pod slices), by MMAL_JAX_DISTRIBUTED=1 (everything auto-detected),
  or by JAX_COORDINATOR_ADDRESS in the environment. Call it before any other JAX work
  (jax.distributed must come before the backends start). A second call is a no-op.
  """
  asked = (
      coordinator_address is not None
      or os.environ.get(ENV, "0") not in ("", "0")
      or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))
  )
  if asked and not jax.distributed.is_initialized():
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
  return jax.process_count() > 1


def _devices():
  """Every device of the run: this process's alone, or, multi-process, all of them by process."""
  if jax.process_count() == 1:
    return jax.local_devices()
  return sorted(jax.devices(), key=lambda d: (d.process_index, d.id))


def data_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """Mesh(("data",)) over the first `num_devices` devices (0: all of them); multi-process, over
  every process's devices (num_devices must then be 0 or all of them).

  Raises ValueError when more devices are asked for than there are, or, multi-process, fewer than
  all of them (a process without a device in the mesh could not hold its rows).
  """
  devices = _devices()
  if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 0:
    raise ValueError(f"num_devices={num_devices!r} must be an int >= 0 (0: every local device)")
  if num_devices > len(devices):
    raise ValueError(
        f"num_devices={num_devices} but this process has {len(devices)} local devices;"
        " lower it, or 0 for all of them"
    )
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    raise ValueError(
        f"num_devices={num_devices} with {jax.process_count()} processes; multi-process runs use"
        f" every device of every process: set it to 0 (or {len(devices)})"
    )
  return jax.sharding.Mesh(np.array(devices[: num_devices or None]), ("data",))


def of_devices(devices=None) -> jax.sharding.Mesh:
  """Mesh(("data",)) over `devices` (a sequence of jax.Device), or over all local devices."""
  if devices is None:
    return data_mesh()
  return jax.sharding.Mesh(np.array(list(devices)), ("data",))


def rows_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Rows split along the mesh's "data" axis, the other axes whole."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def process_rows(rows: int, mesh: jax.sharding.Mesh) -> slice:
  """The rows [start, stop) of a [rows, ...] array sharded by `rows_sharding(mesh)` that this
  process's devices hold (all of them with one process). `rows` must be a multiple of the mesh's
  device count."""
  size = mesh.devices.size
  if rows % size:
    raise ValueError(f"rows={rows} must be a multiple of the mesh's {size} devices")
  index = rows_sharding(mesh).addressable_devices_indices_map((rows,))
  start = min(i[0].start or 0 for i in index.values())
  stop = max(rows if i[0].stop is None else i[0].stop for i in index.values())
  return slice(start, stop)


def global_rows(local: np.ndarray, rows: int, mesh: jax.sharding.Mesh) -> jax.Array:
  """A [rows, ...] jax.Array sharded by `rows_sharding(mesh)` over every process's devices, built
  from each process's own rows: `local` holds rows process_rows(rows, mesh) of it, or fewer (the
  rows past the data's end), which are filled with zeros.

  Call it on every process (collectively), each with its own `local`.
  """
  want = process_rows(rows, mesh)
  local = np.asarray(local)
  if local.shape[0] > want.stop - want.start:
    raise ValueError(
        f"this process holds rows {want.start}:{want.stop} ({want.stop - want.start}) but got"
        f" {local.shape[0]}; pass the rows process_rows() names"
    )
  pad = ((0, want.stop - want.start - local.shape[0]),) + ((0, 0),) * (local.ndim - 1)
  return jax.make_array_from_process_local_data(
      rows_sharding(mesh), np.pad(local, pad), (rows,) + local.shape[1:]
  )
