"""Bucketed shapes: pools padded to a few sizes so that rounds reuse compiled programs.

A pool shrinks and an annotated set grows every round; jitted code compiles once per input shape,
which on CPU costs 0.1-0.4 s per program, more than the round's own work on small pools. Padding
every row count n to `bucket(n)` (multiples of 256 rows, and beyond 8k rows at most 32 sizes per
doubling, so at most 3.1% extra rows: k-center is memory-bound, and every padded row is read once
per center) lets one compiled program serve many rounds. Padded rows are masked inside the jitted code with the
real row counts, passed as traced ints: they are never a k-center pick or the largest gap
(min_sq = -inf), never a top-1/top-2 candidate (score -inf), never a nearest center (|c|^2 = +inf),
and never a picked query.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Rows are padded in steps of at least this many, so that a small pool shrinking (or an annotated
# set growing) by B items a round keeps one shape for several rounds. Not more: a pool that fits
# in the CPU's cache runs k-center from the cache, and measured at d = 512, padding 3,162 rows to
# 4,096 made an "ours" round 1.8x slower.
MIN_STEP = 256


def bucket(n):
  """Smallest multiple of max(MIN_STEP, 2^(bit_length(n) - 6)) that is >= n; 0 stays 0."""
  step = max(MIN_STEP, 1 << max(0, int(n).bit_length() - 6))
  return -(-int(n) // step) * step


@functools.partial(jax.jit, static_argnames=("rows", "sharding"))
def _pad_device(x, rows, sharding):
  x = jnp.pad(x, ((0, rows - x.shape[0]),) + ((0, 0),) * (x.ndim - 1))
  return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def pad_rows(x, rows):
  """x with zero rows appended up to `rows` rows. NumPy stays on the host (no compile); a
  jax.Array sharded over a mesh (e.g. along the rows) keeps its sharding."""
  if x.shape[0] == rows:
    return x
  if isinstance(x, jax.Array):
    sharding = x.sharding if isinstance(x.sharding, jax.sharding.NamedSharding) else None
    return _pad_device(x, rows, sharding)
  x = np.asarray(x)
  return np.pad(x, ((0, rows - x.shape[0]),) + ((0, 0),) * (x.ndim - 1))


# Byte alignment at which jax.device_put aliases a host buffer on CPU instead of copying it (XLA's
# minimum buffer alignment).
HOST_ALIGN = 64


def host_padded(x, rows):
  """f32[rows, d] host copy of `x` (cast to float32) with zero rows appended, in a buffer aligned
  so that `jax.device_put` on CPU uses it in place: the one copy a host pool needs to become a
  padded device array (np.pad followed by a transfer writes it twice)."""
  x = np.asarray(x)
  n = x.shape[0]
  shape = (rows,) + x.shape[1:]
  count = int(np.prod(shape))
  raw = np.empty(count * 4 + HOST_ALIGN, np.uint8)
  start = -raw.ctypes.data % HOST_ALIGN
  out = raw[start : start + count * 4].view(np.float32).reshape(shape)
  out[:n] = x
  out[n:] = 0.0
  return out


def _on_one_cpu(x):
  return (
      x.is_fully_addressable
      and len(x.sharding.device_set) == 1
      and next(iter(x.sharding.device_set)).platform == "cpu"
  )


def padded_f32(x, rows):
  """f32[rows, ...] device array: `x` (host or device, any float dtype) then zero rows, made with
  one copy at most (none when x is a float32 device array of `rows` rows).

  A host array is copied once into an aligned host buffer that the CPU device uses in place
  (`host_padded`); so is an array on one CPU device (read in place through NumPy), since XLA:CPU
  writes a padded copy about 3x slower than NumPy (measured at 200k x 512: 0.46 s vs 0.12 s, and
  np.pad followed by a transfer 1.2 s). An array sharded over several devices is padded on them
  and keeps its sharding.
  """
  if x.shape[0] == rows:
    return jnp.asarray(x, jnp.float32)
  if not isinstance(x, jax.Array):
    return jax.device_put(host_padded(x, rows))
  if _on_one_cpu(x):
    return jax.device_put(host_padded(np.asarray(x), rows), x.sharding)
  return jnp.asarray(pad_rows(x, rows), jnp.float32)


def valid_rows(padded_rows, size):
  """bool[padded_rows]: True on the first `size` (traced) rows."""
  return jnp.arange(padded_rows) < size
