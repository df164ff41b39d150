"""The unaligned view, the oracle's truth, the missing-data variant and streams."""

import numpy as np
import pytest

from mmal_jax.annotation import unaligned
from mmal_jax.data import DataError


def _check_truth(u, num_pairs):
  """The truth must be a partial bijection between items that share a source row."""
  for m in (0, 1):
    n = u.num_items(m)
    np.testing.assert_array_equal(np.sort(u.order[m]), np.arange(n))
    assert len(u.partner[m]) == n and u.rows[m].min() >= 0 and u.rows[m].max() < num_pairs
    assert len(set(u.rows[m].tolist())) == n
    for i in range(n):
      j = int(u.partner[m][i])
      if j >= 0:
        assert int(u.partner[1 - m][j]) == i
        assert u.rows[1 - m][j] == u.rows[m][i]
      else:
        assert u.rows[m][i] not in set(u.rows[1 - m].tolist())


def test_full_alignment_is_hidden_but_complete():
  u = unaligned.make_unaligned(500, seed=1)
  _check_truth(u, 500)
  assert (u.partner[0] >= 0).all() and (u.partner[1] >= 0).all()
  # Ids must not give the alignment away: an identity partner map would make every id its own.
  assert np.mean(u.partner[0] == np.arange(500)) < 0.05
  assert np.mean(u.order[0] == u.order[1]) < 0.05


@pytest.mark.parametrize("modality", [0, 1])
def test_missing_modality_leaves_partnerless_items(modality):
  u = unaligned.make_unaligned(200, seed=2, missing_fraction=0.3, missing_modality=modality)
  _check_truth(u, 200)
  assert u.num_items(modality) == 140 and u.num_items(1 - modality) == 200
  assert (u.partner[1 - modality] == -1).sum() == 60
  assert (u.partner[modality] >= 0).all()


def test_deterministic_per_seed():
  a, b, c = (unaligned.make_unaligned(50, seed=s, missing_fraction=0.2) for s in (7, 7, 8))
  for m in (0, 1):
    np.testing.assert_array_equal(a.order[m], b.order[m])
    np.testing.assert_array_equal(a.partner[m], b.partner[m])
  assert not np.array_equal(a.partner[0], c.partner[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(missing_fraction=1.0),
        dict(missing_fraction=-0.1),
        dict(missing_fraction=0.96),
        dict(missing_modality=2),
    ],
)
def test_make_unaligned_rejects_bad_options(kwargs):
  with pytest.raises(DataError):
    unaligned.make_unaligned(10, seed=0, **kwargs)


def test_make_unaligned_rejects_empty_pool():
  with pytest.raises(DataError, match="num_pairs"):
    unaligned.make_unaligned(0, seed=0)


@pytest.mark.parametrize(
    "num_items,buffer_size", [(1, 4), (2, 1), (10, 3), (1000, 64), (4097, 1000)]
)
def test_stream_buffers_partition_the_items(num_items, buffer_size):
  buffers = list(unaligned.stream_buffers(num_items, buffer_size, seed=3))
  sizes = [len(b) for b in buffers]
  assert sizes[:-1] == [buffer_size] * (len(buffers) - 1) and 1 <= sizes[-1] <= buffer_size
  everything = np.concatenate(buffers)
  assert everything.dtype == np.int64
  np.testing.assert_array_equal(np.sort(everything), np.arange(num_items))


def test_stream_buffers_are_random_and_seeded():
  first = [next(unaligned.stream_buffers(10_000, 500, seed=s)) for s in (0, 0, 1)]
  np.testing.assert_array_equal(first[0], first[1])
  assert not np.array_equal(first[0], first[2])
  # A uniform sample of 500 ids from [0, 10000) has mean 4999.5 +- ~129 (std of the mean).
  assert abs(first[0].mean() - 4999.5) < 650
  assert (np.diff(np.sort(first[0])) > 1).mean() > 0.8  # Not a contiguous block.


def test_stream_buffers_memory_does_not_grow_with_the_source():
  # A trillion items: any O(num_items) table would fail to allocate.
  stream = unaligned.stream_buffers(10**12, 256, seed=0)
  a, b = next(stream), next(stream)
  assert len(a) == len(b) == 256 and not set(a.tolist()) & set(b.tolist())
  assert a.min() >= 0 and a.max() < 10**12


def test_stream_buffers_rejects_bad_sizes():
  with pytest.raises(DataError, match="buffer_size"):
    unaligned.stream_buffers(10, 0, seed=0)
  with pytest.raises(DataError, match="num_items"):
    unaligned.stream_buffers(0, 5, seed=0)


def _learner_pools(u, row_embeddings):
  """Embeddings laid out in the learner's order: pools[m][p] is item u.order[m][p]."""
  return [row_embeddings[m][u.rows[m][u.order[m]]] for m in (0, 1)]


@pytest.mark.parametrize("annotate", [False, True])
def test_selection_depends_on_items_not_on_pool_order(annotate):
  """Algorithm 1 picks the same items whatever order the learner holds its pools in.

  With nothing annotated, k-center's first center is the pool's first item (a documented tie rule),
  so there the permutations keep each pool's first item in place; otherwise any permutation goes.
  """
  acquisition = pytest.importorskip("mmal_jax.acquisition")
  import jax  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  num_pairs, d = 120, 8
  z_img = rng.normal(size=(num_pairs, d))
  z_txt = z_img + 0.5 * rng.normal(size=(num_pairs, d))
  rows = [(z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32) for z in (z_img, z_txt)]
  u = unaligned.make_unaligned(num_pairs, seed=1, missing_fraction=0.1)
  # Annotate 10 pairs (images with partners): they leave the pools and become the centers.
  bought = [u.order[0][u.partner[0][u.order[0]] >= 0][: 10 if annotate else 0]]
  bought.append(u.partner[0][bought[0]])
  annotated = [rows[m][u.rows[m][bought[m]]] for m in (0, 1)]

  def picks(view):
    keep = [~np.isin(view.order[m], bought[m]) for m in (0, 1)]
    view = unaligned.Unaligned(
        order=tuple(view.order[m][keep[m]] for m in (0, 1)), partner=view.partner, rows=view.rows
    )
    sel = acquisition.select(
        "ours",
        _learner_pools(view, rows),
        annotated,
        batch_size=6,
        coreset_size=15,
        key=jax.random.PRNGKey(0),
    )
    return {(int(m), int(view.order[m][i])) for m, i in zip(sel.modality, sel.index)}

  base = picks(u)
  assert len(base) == 6
  for seed in range(3):
    prng = np.random.default_rng(seed + 10)
    order = []
    for m in (0, 1):
      perm = prng.permutation(u.num_items(m))
      if not annotate:  # Keep the first remaining item first (the empty-set tie rule).
        first = np.flatnonzero(~np.isin(u.order[m], bought[m]))[0]
        perm = np.concatenate([[first], perm[perm != first]])
      order.append(u.order[m][perm])
    shuffled = unaligned.Unaligned(order=tuple(order), partner=u.partner, rows=u.rows)
    assert picks(shuffled) == base


def test_one_pair_is_a_pool():
  u = unaligned.make_unaligned(1, seed=0)
  _check_truth(u, 1)
  assert [p.tolist() for p in u.partner] == [[0], [0]] and [r.tolist() for r in u.rows] == [
      [0],
      [0],
  ]


def test_range_errors_say_which_bound():
  with pytest.raises(DataError, match=r"must lie in \[0, 1\)"):
    unaligned.make_unaligned(10, seed=0, missing_fraction=1.0)
  with pytest.raises(DataError, match=r"below 2\*\*62"):
    unaligned.stream_buffers(2**62, 5, seed=0)
  a = next(unaligned.stream_buffers(2**62 - 1, 5, seed=0))  # the largest stream
  assert len(set(a.tolist())) == 5 and a.min() >= 0 and a.max() < 2**62 - 1


def _ref_stream(num_items, buffer_size, seed):
  """The stream from its description, in Python integers: a 4-round Feistel network on
  [0, 4**h), h the smallest with 4**h >= num_items, round function splitmix64's finalizer of
  right + key (mod 2**64), keys drawn by default_rng([seed, 5]); cycle walking into range."""
  keys = np.random.default_rng([seed, 5]).integers(0, 2**63, size=4, dtype=np.uint64).tolist()
  h = 1
  while 4**h < num_items:
    h += 1
  mask, wrap = (1 << h) - 1, 2**64

  def feistel(x):
    left, right = x >> h, x & mask
    for key in keys:
      z = (right + key) * 0x9E3779B97F4A7C15 % wrap
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % wrap
      z = (z ^ (z >> 27)) * 0x94D049BB133111EB % wrap
      left, right = right, left ^ ((z ^ (z >> 31)) & mask)
    return (left << h) | right

  out = []
  for x in range(num_items):
    y = feistel(x)
    while y >= num_items:
      y = feistel(y)
    out.append(y)
  return [out[s : s + buffer_size] for s in range(0, num_items, buffer_size)]


@pytest.mark.parametrize("num_items,buffer_size,seed", [(16, 5, 0), (17, 4, 1), (1000, 64, 2)])
def test_stream_buffers_match_the_reference_feistel_network(num_items, buffer_size, seed):
  got = [b.tolist() for b in unaligned.stream_buffers(num_items, buffer_size, seed=seed)]
  assert got == _ref_stream(num_items, buffer_size, seed)
