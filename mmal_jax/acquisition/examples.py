"""A strategy written against the public interface only (strategies.py), as a user's own would be.

From a config or the command line it is the path "mmal_jax.acquisition.examples:farthest":

  python -m mmal_jax.main --config=configs/siglip_colorswap.py "--config.strategies=('ours','mmal_jax.acquisition.examples:farthest')"

(a path holds dots and a colon, so the command line needs the quoted tuple form).

It is k-center's first step without the rest of Algorithm 1: in the least-covered modality, the
B items farthest from every annotated item of that modality (no coreset, no margins), so it
shows what coverage alone buys.
"""

import jax.numpy as jnp

from mmal_jax.acquisition.strategies import Strategy


def farthest_first(state, modality, *, batch_size, coreset_size, key):
  """int32[B]: the B items of `modality` farthest from its annotated items, farthest first (ties:
  lower index first); with nothing annotated every distance is +inf, so the first B items.

  Args:
    state: AcquisitionState; state.min_distances()[modality] is f32[N_m].
    modality: int, the modality to pick from.
    batch_size: B; coreset_size, key: unused.
  """
  del coreset_size, key
  return jnp.argsort(-state.min_distances()[modality], stable=True)[:batch_size]


farthest = Strategy("farthest", farthest_first, modality="coverage", coverage=True)
