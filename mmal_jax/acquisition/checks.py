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
# Storage dtypes of pools (`init_state(..., storage=)`): bfloat16 halves the bytes that every
# k-center pass reads; the arithmetic stays float32.
STORAGE = ("float32", "bfloat16")


def check_metric(metric):
  if metric not in METRICS:
    raise ValueError(f"metric={metric!r} is unknown; use one of {METRICS}.")


def check_storage(storage):
  if storage not in STORAGE:
    raise ValueError(f"storage={storage!r} is unknown; use one of {STORAGE}.")


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
    raise ValueError(
        f"{name} has shape {shape}; expected a 2-D [num_items, dim] array of embeddings."
    )
  if dim is not None and shape[1] != dim:
    raise ValueError(
        f"{name} has dimension {shape[1]} but {dim_from} has {dim}; "
        "embed every modality into the same space."
    )
  if not np.issubdtype(np.dtype(x.dtype), np.floating):
    raise ValueError(f"{name} has dtype {x.dtype}; expected floating-point embeddings.")
  bad = _first_bad_row(x)
  if bad is not None:
    raise ValueError(
        f"{name} contains NaN or inf (first at row {bad}); "
        "fix or drop those embeddings before acquisition."
    )
  return shape


def check_modalities(pools, annotated):
  """Validates per-modality pools [N_m, d] and annotated [K_m, d]; returns the pool sizes."""
  if not isinstance(pools, Sequence):
    raise ValueError(
        f"pools is a {type(pools).__name__}; pass a list with one [N_m, d] array per "
        "modality (e.g. [image_embeddings, text_embeddings])."
    )
  if len(pools) < 2:
    raise ValueError(
        f"pools has {len(pools)} modalities; pass at least 2 [N_m, d] arrays "
        "(e.g. [image_embeddings, text_embeddings])."
    )
  if not isinstance(annotated, Sequence) or len(annotated) != len(pools):
    n = len(annotated) if isinstance(annotated, Sequence) else type(annotated).__name__
    raise ValueError(
        f"annotated has {n} modalities but pools has {len(pools)}; pass one [K, d] "
        "array per modality (K may be 0)."
    )
  dim = check_matrix("pools[0] (modality 0)", pools[0])[1]
  sizes = []
  for m, x in enumerate(pools):
    name = f"pools[{m}] (modality {m})"
    sizes.append(check_matrix(name, x, dim=dim, dim_from="pools[0] (modality 0)")[0])
  for m, x in enumerate(annotated):
    check_matrix(f"annotated[{m}] (modality {m})", x, dim=dim, dim_from="pools[0] (modality 0)")
  return tuple(sizes)


def check_sizes(sizes, rows):
  """The real row counts N_m of pools holding `rows` rows each (the rows past N_m are padding, as
  in a pool sharded over processes, whose row count is a multiple of the device count): `rows`
  itself when sizes is None. Returns a tuple of ints."""
  if sizes is None:
    return tuple(rows)
  if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) != len(rows):
    raise ValueError(f"sizes={sizes!r} must give one row count per pool ({len(rows)}).")
  for m, (n, r) in enumerate(zip(sizes, rows)):
    check_count(f"sizes[{m}] (modality {m})", n)
    if n > r:
      raise ValueError(
          f"sizes[{m}]={n} > the {r} rows of pools[{m}] (modality {m}); sizes counts the real"
          " rows at the top of each pool."
      )
  return tuple(int(n) for n in sizes)


def is_fixed_modality(modality):
  """True when the modality rule names one modality (an int index), not None or "random"."""
  return modality is not None and not isinstance(modality, str)


def check_modality(modality, num_modalities):
  """Validates the query-modality rule: None, "random" or an int modality index in [0, M)."""
  if modality is None or (isinstance(modality, str) and modality == "random"):
    return
  if (
      isinstance(modality, bool)
      or not isinstance(modality, (int, np.integer))
      or not 0 <= modality < num_modalities
  ):
    raise ValueError(
        f"modality={modality!r} is unknown; use None (each strategy's own rule), "
        f"'random' or a modality index in [0, {num_modalities})."
    )


def check_round(strategy, sizes, *, batch_size, coreset_size, modality=None):
  """Validates the batch sizes and the modality rule, then the pools against `strategy`'s needs.

  strategy: a resolved `Strategy` (the name was checked when it was resolved). The generic part:
  batch_size and coreset_size ints >= 1 with batch_size <= coreset_size, a known modality rule.
  Then strategy.check (the built-ins': `select.BUILTINS`), or by default: every pool the round
  may draw from (with modality=None or "random" every pool, with an int only that one) holds
  batch_size items; for a strategy whose own rule is "any" under modality=None, all pools
  together do.
  """
  check_count("batch_size", batch_size, minimum=1)
  check_count("coreset_size", coreset_size, minimum=1)
  check_modality(modality, len(sizes))
  if batch_size > coreset_size:
    raise ValueError(
        f"batch_size={batch_size} > coreset_size={coreset_size}; the batch is picked "
        "from the coreset, so use coreset_size >= batch_size."
    )
  if strategy.check is not None:
    strategy.check(sizes, batch_size=batch_size, coreset_size=coreset_size, modality=modality)
  elif strategy.modality == "any" and modality is None:
    check_total(sizes, batch_size)
  else:
    check_pools_hold(sizes, modality, batch_size, "batch_size")


def check_every_modality(sizes):
  """Margins need at least one item of every modality."""
  for m, n in enumerate(sizes):
    if n == 0:
      raise ValueError(
          f"pools[{m}] (modality {m}) is empty; margins need at least one item of "
          "every modality, so stop acquiring once a pool is exhausted."
      )


def check_total(sizes, batch_size):
  """A selection over every modality needs batch_size items in all pools together."""
  if batch_size > sum(sizes):
    raise ValueError(
        f"batch_size={batch_size} > {sum(sizes)} unaligned items in all pools; " "lower batch_size."
    )


def check_pools_hold(sizes, modality, need, what):
  """Every pool the rule `modality` may draw from (all for None / "random", else that one) holds
  `need` items; `what` names the argument ("batch_size" or "coreset_size") in the message."""
  drawn = (int(modality),) if is_fixed_modality(modality) else range(len(sizes))
  for m in drawn:
    if need > sizes[m]:
      raise ValueError(
          f"{what}={need} > pool size {sizes[m]} of pools[{m}] (modality {m}); lower "
          f"{what} or stop acquiring once a pool runs this low."
      )


def check_picks(name, picks, sizes, batch_size, modality):
  """Validates what a strategy's round function returned; returns (int32[B] modality, int32[B]
  index).

  picks: a Selection (anything with .modality and .index), a pair (modality, index) of int[B]
  arrays, or, when `modality` (the resolved query modality) is an int, int[B] indices into that
  modality's pool. Raises a one-line ValueError naming strategy `name` on a wrong shape or dtype,
  a modality out of range or other than `modality`, an index outside [0, N_m), or an item picked
  twice.
  """
  where = f"strategy {name!r} returned"
  if hasattr(picks, "modality") and hasattr(picks, "index"):
    mod, index = picks.modality, picks.index
  elif isinstance(picks, tuple) and len(picks) == 2:
    mod, index = picks
  elif modality is None:
    raise ValueError(
        f"{where} {type(picks).__name__}, but with modality=None its picks may come "
        "from any modality: return Selection(modality, index) or a pair of int[B] "
        "arrays (modality, index)."
    )
  else:
    mod, index = None, picks
  index = np.asarray(index)
  mod = np.full(index.shape, modality) if mod is None else np.asarray(mod)
  for what, x in (("indices", index), ("modalities", mod)):
    if x.shape != (batch_size,):
      raise ValueError(
          f"{where} {what} of shape {x.shape}; expected int[{batch_size}] "
          f"(batch_size={batch_size} picks, best first)."
      )
    if not np.issubdtype(x.dtype, np.integer):
      raise ValueError(f"{where} {what} of dtype {x.dtype}; expected integers.")
  bad = np.flatnonzero((mod < 0) | (mod >= len(sizes)))
  if bad.size:
    raise ValueError(
        f"{where} modality {mod[bad[0]]} at pick {bad[0]}; modalities are " f"0..{len(sizes) - 1}."
    )
  if modality is not None and (mod != modality).any():
    j = int(np.flatnonzero(mod != modality)[0])
    raise ValueError(
        f"{where} modality {mod[j]} at pick {j}, but this round queries modality "
        f"{modality} only."
    )
  limit = np.asarray(sizes, np.int64)[mod]
  bad = np.flatnonzero((index < 0) | (index >= limit))
  if bad.size:
    j = int(bad[0])
    raise ValueError(
        f"{where} index {index[j]} at pick {j}, outside [0, {limit[j]}) of pools"
        f"[{mod[j]}] (modality {mod[j]}); return positions into state.pools[m]."
    )
  flat = mod.astype(np.int64) * (int(limit.max(initial=0)) + 1) + index
  _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
  repeats = np.flatnonzero(first[inverse] != np.arange(batch_size))
  if repeats.size:
    j = int(repeats[0])
    i = int(first[inverse[j]])
    raise ValueError(
        f"{where} item {index[i]} of modality {mod[i]} twice (picks {i} and {j}); "
        "each pick must be a distinct item."
    )
  return mod.astype(np.int32), index.astype(np.int32)
