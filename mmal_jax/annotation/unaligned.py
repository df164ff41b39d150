"""The learner's unaligned view of a paired dataset, the oracle's truth, and streams.

A `Pairs` of N rows becomes one pool per modality (0 = image, 1 = text). Item ids of each modality
are a random relabeling of the rows that have that modality, so an id says nothing about its
partner: only `partner` (read by the oracle alone) does. The missing-data variant (paper Section 6)
drops the given modality from a fraction of the rows, leaving their other half without a partner.
"""

import dataclasses
from typing import Iterator

import numpy as np

from mmal_jax.data.pairs import DataError

IMAGE, TEXT = 0, 1  # the modality indices, here only (oracle, loop and experiments import them)


@dataclasses.dataclass(frozen=True)
class Unaligned:
  """Two unaligned pools over the rows of one `Pairs`.

  Attributes:
    order: order[m] int64[N_m], the item ids of modality m in the learner's own random order.
    partner: TRUTH, for the oracle only: partner[m][i] is item i's partner id in modality 1 - m,
      -1 if it has none.
    rows: rows[m][i] is the row of the source `Pairs` holding item i of modality m (its image for
      m = 0, its text for m = 1): how the loop fetches an item's data.
  """

  order: tuple[np.ndarray, ...]
  partner: tuple[np.ndarray, ...]
  rows: tuple[np.ndarray, ...]

  def num_items(self, modality: int) -> int:
    return len(self.rows[modality])


def make_unaligned(
    num_pairs: int, *, seed: int, missing_fraction: float = 0.0, missing_modality: int = TEXT
) -> Unaligned:
  """Hides the alignment of `num_pairs` rows; `missing_fraction` of them lose `missing_modality`.

  Deterministic for a given seed. With missing_fraction = f, round(f * num_pairs) random rows have
  no item of `missing_modality`, and their item of the other modality has partner -1.
  """
  if not isinstance(num_pairs, (int, np.integer)) or num_pairs < 1:
    raise DataError(f"num_pairs={num_pairs!r} must be a positive int (the size of the paired pool)")
  if not 0.0 <= missing_fraction < 1.0:
    raise DataError(
        f"missing_fraction={missing_fraction} must lie in [0, 1): the share of rows"
        " whose missing_modality item is dropped"
    )
  if missing_modality not in (IMAGE, TEXT):
    raise DataError(
        f"missing_modality={missing_modality!r} must be 0 (drop images) or 1 (drop texts)"
    )
  num_missing = int(round(missing_fraction * num_pairs))
  if num_missing == num_pairs:
    raise DataError(
        f"missing_fraction={missing_fraction} drops all {num_pairs} items of modality"
        f" {missing_modality}; use a smaller fraction"
    )
  rng = np.random.default_rng([seed, 4])
  has = np.ones((2, num_pairs), bool)
  has[missing_modality, rng.permutation(num_pairs)[:num_missing]] = False
  rows = tuple(rng.permutation(np.flatnonzero(has[m])).astype(np.int64) for m in (IMAGE, TEXT))
  item_of_row = np.full((2, num_pairs), -1, np.int64)
  for m in (IMAGE, TEXT):
    item_of_row[m, rows[m]] = np.arange(len(rows[m]))
  partner = tuple(item_of_row[1 - m, rows[m]] for m in (IMAGE, TEXT))
  order = tuple(rng.permutation(len(rows[m])).astype(np.int64) for m in (IMAGE, TEXT))
  return Unaligned(order=order, partner=partner, rows=rows)


# ----------------------------------------------------------------------------------------------
# Streams: a seeded permutation of [0, num_items) computed block by block (a Feistel network with
# cycle walking), so that memory stays O(buffer_size) even for billions of items.

_ROUNDS = 4
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _feistel(x, keys, half_bits):
  """A bijection of [0, 4**half_bits) applied to uint64 array x."""
  mask = np.uint64((1 << half_bits) - 1)
  shift = np.uint64(half_bits)
  left, right = x >> shift, x & mask
  for key in keys:
    z = (right + key) * _MIX[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX[1]
    z = (z ^ (z >> np.uint64(27))) * _MIX[2]
    left, right = right, left ^ ((z ^ (z >> np.uint64(31))) & mask)
  return (left << shift) | right


def _permute(positions, num_items, keys, half_bits):
  """The seeded permutation of [0, num_items) at `positions` (cycle walking stays in range)."""
  out = _feistel(positions.astype(np.uint64), keys, half_bits)
  outside = out >= np.uint64(num_items)
  while outside.any():
    out[outside] = _feistel(out[outside], keys, half_bits)
    outside = out >= np.uint64(num_items)
  return out.astype(np.int64)


def stream_buffers(num_items: int, buffer_size: int, *, seed: int) -> Iterator[np.ndarray]:
  """Yields disjoint int64[buffer_size] buffers of item ids (the last may be shorter).

  Together the buffers hold every id in [0, num_items) exactly once, in a seeded random order;
  memory is O(buffer_size) whatever num_items is. What the caller does not pick from a buffer is
  never offered again.
  """
  if not isinstance(num_items, (int, np.integer)) or not 1 <= num_items < 2**62:
    raise DataError(f"num_items={num_items!r} must be a positive int below 2**62")
  if not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
    raise DataError(f"buffer_size={buffer_size!r} must be a positive int (items visible per round)")
  half_bits = max(1, (int(num_items - 1).bit_length() + 1) // 2)
  keys = np.random.default_rng([seed, 5]).integers(0, 2**63, size=_ROUNDS, dtype=np.uint64)
  starts = range(0, num_items, buffer_size)
  # A generator expression, so that bad sizes raise at the call rather than at the first next().
  return (
      _permute(
          np.arange(s, min(s + buffer_size, num_items), dtype=np.uint64), num_items, keys, half_bits
      )
      for s in starts
  )
