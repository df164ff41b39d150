"""Input validation for acquisition, run on the host before any jitted call.

Every failure is a one-line ValueError that names the argument (and the modality) and says how to fix
it. Shapes are checked from metadata; finiteness with one read of each array (NumPy for host arrays,
a single fused reduction for arrays that already live on a device).
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("euclidean", "cosine")


def check_metric(metric):
  if metric not in METRICS:
    raise ValueError(f"metric={metric!r} is unknown; use one of {METRICS}.")


def check_count(name, value, *, minimum=0):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def _first_bad_row(x):
  """Index of the first row holding NaN/inf, or None."""
  if isinstance(x, jax.Array):
    if bool(jnp.isfinite(x).all()):
      return None
    x = np.asarray(x)
  ok = np.isfinite(x)
  if ok.all():
    return None
  return int(np.argmin(ok.reshape(len(x), -1).all(axis=1)))


def check_matrix(name, x, *, dim=None, dim_from=None):
  """Checks that `x` is a finite 2-D [n, d] array (with d == dim when given); returns its shape."""
  shape = getattr(x, "shape", None)
  if shape is None or len(shape) != 2:
    raise ValueError(f"{name} has shape {shape}; expected a 2-D [num_items, dim] array of embeddings.")
  if dim is not None and shape[1] != dim:
    raise ValueError(f"{name} has dimension {shape[1]} but {dim_from} has {dim}; "
                     "embed every modality into the same space.")
  if not np.issubdtype(np.dtype(x.dtype), np.floating):
    raise ValueError(f"{name} has dtype {x.dtype}; expected floating-point embeddings.")
  bad = _first_bad_row(x)
  if bad is not None:
    raise ValueError(f"{name} contains NaN or inf (first at row {bad}); "
                     "fix or drop those embeddings before acquisition.")
  return shape


def check_modalities(pools, annotated):
  """Validates per-modality pools [N_m, d] and annotated [K_m, d]; returns the pool sizes."""
  if not isinstance(pools, Sequence):
    raise ValueError(f"pools is a {type(pools).__name__}; pass a list with one [N_m, d] array per "
                     "modality (e.g. [image_embeddings, text_embeddings]).")
  if len(pools) < 2:
    raise ValueError(f"pools has {len(pools)} modalities; pass at least 2 [N_m, d] arrays "
                     "(e.g. [image_embeddings, text_embeddings]).")
  if not isinstance(annotated, Sequence) or len(annotated) != len(pools):
    n = len(annotated) if isinstance(annotated, Sequence) else type(annotated).__name__
    raise ValueError(f"annotated has {n} modalities but pools has {len(pools)}; pass one [K, d] "
                     "array per modality (K may be 0).")
  dim = check_matrix("pools[0] (modality 0)", pools[0])[1]
  sizes = []
  for m, x in enumerate(pools):
    name = f"pools[{m}] (modality {m})"
    sizes.append(check_matrix(name, x, dim=dim, dim_from="pools[0] (modality 0)")[0])
  for m, x in enumerate(annotated):
    check_matrix(f"annotated[{m}] (modality {m})", x, dim=dim, dim_from="pools[0] (modality 0)")
  return tuple(sizes)


def is_fixed_modality(modality):
  """True when the modality rule names one modality (an int index), not None or "random"."""
  return modality is not None and not isinstance(modality, str)


def check_modality(modality, num_modalities):
  """Validates the query-modality rule: None, "random" or an int modality index in [0, M)."""
  if modality is None or (isinstance(modality, str) and modality == "random"):
    return
  if (isinstance(modality, bool) or not isinstance(modality, (int, np.integer))
      or not 0 <= modality < num_modalities):
    raise ValueError(f"modality={modality!r} is unknown; use None (each strategy's own rule), "
                     f"'random' or a modality index in [0, {num_modalities}).")


def check_round(strategy, strategies, sizes, *, batch_size, coreset_size, modality=None):
  """Validates the strategy, the modality rule and the batch sizes against the pool sizes.

  Every pool the round may draw from must hold enough items: coreset_size for "ours" (its
  coreset), batch_size for the others; with modality=None or "random" that is every pool (any may
  be chosen), with an int modality only that one. Margin-based strategies ("ours", "uncertainty",
  "badge") also need every other modality non-empty. "uncertainty" with modality=None draws from
  all pools together: it needs batch_size items in total.
  """
  if strategy not in strategies:
    raise ValueError(f"strategy={strategy!r} is unknown; use one of {strategies}.")
  check_count("batch_size", batch_size, minimum=1)
  check_count("coreset_size", coreset_size, minimum=1)
  check_modality(modality, len(sizes))
  if batch_size > coreset_size:
    raise ValueError(f"batch_size={batch_size} > coreset_size={coreset_size}; the batch is picked "
                     "from the coreset, so use coreset_size >= batch_size.")
  if strategy in ("ours", "uncertainty", "badge"):
    for m, n in enumerate(sizes):
      if n == 0:
        raise ValueError(f"pools[{m}] (modality {m}) is empty; margins need at least one item of "
                         "every modality, so stop acquiring once a pool is exhausted.")
  if strategy == "uncertainty" and modality is None:
    if batch_size > sum(sizes):
      raise ValueError(f"batch_size={batch_size} > {sum(sizes)} unaligned items in all pools; "
                       "lower batch_size.")
    return
  need, what = (coreset_size, "coreset_size") if strategy == "ours" else (batch_size, "batch_size")
  drawn = (int(modality),) if is_fixed_modality(modality) else range(len(sizes))
  for m in drawn:
    if need > sizes[m]:
      raise ValueError(f"{what}={need} > pool size {sizes[m]} of pools[{m}] (modality {m}); lower "
                       f"{what} or stop acquiring once a pool runs this low.")
