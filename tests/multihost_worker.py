"""One process of the multi-host test (tests/test_multihost.py), or, imported, the same work in the
test's own process: acquisition on pools sharded over every process's devices, a tiny training run
and embeddings, on data every process generates alike.

  python tests/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz

Each process gives only its own rows of the pools (`mesh.process_rows`); process 0 writes OUT.npz.
"""

import os
import sys

N, DIM, ANNOTATED = 1001, 16, 20  # 1001 rows: not a multiple of the device count, so padded
BATCH, CORESET = 10, 40
# k-center and margins (ours), every item's margins (uncertainty), keyed draws (random); the other
# strategies reuse these blocks, and each compile costs seconds.
STRATEGIES = ("ours", "uncertainty", "random")


def work(mesh):
  """Picks, training losses and params, and embeddings under `mesh` (a dict of NumPy arrays)."""
  import jax  # pylint: disable=g-import-not-at-top  # after the process's XLA flags are set
  import numpy as np  # pylint: disable=g-import-not-at-top

  from mmal_jax import acquisition  # pylint: disable=g-import-not-at-top
  from mmal_jax import embeddings  # pylint: disable=g-import-not-at-top
  from mmal_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  from mmal_jax import models  # pylint: disable=g-import-not-at-top
  from mmal_jax.models import npz  # pylint: disable=g-import-not-at-top
  from mmal_jax.training import train  # pylint: disable=g-import-not-at-top
  import small_models  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)

  def unit(rows):
    x = rng.standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

  pools, annotated = [unit(N), unit(N)], [unit(ANNOTATED), unit(ANNOTATED // 2)]
  size = mesh.devices.size
  rows = -(-N // size) * size
  mine = mesh_lib.process_rows(rows, mesh)
  shards = [mesh_lib.global_rows(p[mine], rows, mesh) for p in pools]
  out = {}
  for name in STRATEGIES:
    sel = acquisition.select(
        name,
        shards,
        annotated,
        batch_size=BATCH,
        coreset_size=CORESET,
        key=jax.random.key(1),
        sizes=(N, N),
    )
    out[f"picks/{name}"] = np.stack([sel.modality, sel.index])
    plain = acquisition.select(
        name, pools, annotated, batch_size=BATCH, coreset_size=CORESET, key=jax.random.key(1)
    )
    out[f"plain/{name}"] = np.stack([plain.modality, plain.index])
  # A second round on the incremental state, after buying the first round's picks.
  state = acquisition.init_state(shards, annotated, sizes=(N, N))
  sel = acquisition.select_from_state(
      "ours", state, batch_size=BATCH, coreset_size=CORESET, key=jax.random.key(1)
  )
  m = int(sel.modality[0])
  removed = [sel.index if i == m else np.zeros(0, np.int64) for i in range(2)]
  added = [pools[m][sel.index] if i == m else np.zeros((0, DIM), np.float32) for i in range(2)]
  sel = acquisition.select_from_state(
      "ours",
      acquisition.update_state(state, removed, added),
      batch_size=BATCH,
      coreset_size=CORESET,
      key=jax.random.key(1),
  )
  out["picks/ours_round2"] = np.stack([sel.modality, sel.index])

  cfg = small_models.small_config()
  model = models.get_model(cfg)
  params = jax.device_get(models.init_params(model, cfg, jax.random.key(0)))
  images = rng.uniform(-1, 1, (20, 16, 16, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (20, 6)).astype(np.int32)
  trained, info = train.fit(
      model, params, images, tokens, small_models.train_config(), key=jax.random.key(3), mesh=mesh
  )
  out["loss"] = info["loss"]
  out.update({f"params/{k}": v for k, v in npz.flatten(jax.device_get(trained)).items()})
  out["embeddings"] = embeddings.embed_texts(model, trained, tokens, batch_size=8, mesh=mesh)
  return out


def main(process_id, num_processes, port, path):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from mmal_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  assert mesh_lib.initialize(f"localhost:{port}", num_processes, process_id)
  out = work(mesh_lib.data_mesh())
  if jax.process_index() == 0:
    np.savez(path, **out)


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
