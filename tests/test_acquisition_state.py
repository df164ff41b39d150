"""Incremental state vs recomputation, sharded vs single-device pools, compiles, input validation."""

import importlib

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mmal_jax import acquisition
from mmal_jax.acquisition import badge
from mmal_jax.acquisition import distances
from mmal_jax.acquisition import kcenter
from mmal_jax.acquisition import padding
import test_acquisition_reference as ref


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_incremental_rounds_equal_recomputed_rounds(metric):
  rng = np.random.default_rng(10)
  n, d, b, bc = 96, 8, 5, 9
  pools = [ref.unit_rows(rng, n, d), ref.unit_rows(rng, n, d)]
  partner = rng.permutation(n)  # truth: image i pairs with text partner[i]
  ids = [np.arange(n), np.arange(n)]  # original item id of each current pool row
  bought = [[], []]
  state = acquisition.init_state(pools, [p[:0] for p in pools], metric=metric)
  for round_ in range(3):
    current = [pools[m][ids[m]] for m in range(2)]
    annotated = [pools[m][np.array(bought[m], int)].reshape(-1, d) for m in range(2)]
    fresh = acquisition.select(
        "ours",
        current,
        annotated,
        batch_size=b,
        coreset_size=bc,
        key=jax.random.key(round_),
        metric=metric,
    )
    sel = acquisition.select_from_state(
        "ours", state, batch_size=b, coreset_size=bc, key=jax.random.key(round_)
    )
    np.testing.assert_array_equal(sel.modality, fresh.modality)
    np.testing.assert_array_equal(sel.index, fresh.index)
    for m in range(2):  # the carried cache is the brute-force distance to the annotated set
      np.testing.assert_allclose(
          np.asarray(state.min_distances()[m]),
          ref.min_distances(current[m], annotated[m], metric),
          atol=2e-3,
      )
    m = int(sel.modality[0])
    picked = ids[m][sel.index]
    partners = partner[picked] if m == 0 else np.argsort(partner)[picked]
    removed, added = [None, None], [None, None]
    for o, items in ((m, picked), (1 - m, partners)):
      removed[o] = np.searchsorted(ids[o], items)  # ids stay sorted: np.delete keeps order
      added[o] = pools[o][items]
      bought[o].extend(items.tolist())
    state = acquisition.update_state(state, removed, added)
    ids = [np.delete(ids[o], removed[o]) for o in range(2)]
    assert state.sizes == (n - b * (round_ + 1),) * 2
    np.testing.assert_allclose(np.asarray(state.pools[1]), pools[1][ids[1]], atol=1e-6)


def test_sharded_pools_select_the_same_as_one_device():
  devices = np.array(jax.devices())
  assert len(devices) == 8, "tests/conftest.py should give 8 host devices"
  sharding = NamedSharding(Mesh(devices, ("data",)), P("data", None))
  rng = np.random.default_rng(11)
  pools = [ref.unit_rows(rng, 128, 8), ref.unit_rows(rng, 64, 8)]
  annotated = [ref.unit_rows(rng, 4, 8), ref.unit_rows(rng, 3, 8)]
  sharded = [jax.device_put(p, sharding) for p in pools]
  state = acquisition.init_state(sharded, annotated)
  assert state.padded_pools[0].sharding.spec == P("data", None)  # the sharded path runs below
  for strategy in ("ours", "coreset", "uncertainty", "random"):
    kwargs = dict(batch_size=6, coreset_size=10, key=jax.random.key(1))
    one = acquisition.select(strategy, pools, annotated, **kwargs)
    many = acquisition.select(strategy, sharded, annotated, **kwargs)
    np.testing.assert_array_equal(many.modality, one.modality, err_msg=strategy)
    np.testing.assert_array_equal(many.index, one.index, err_msg=strategy)
  got = acquisition.min_distances(sharded[0], annotated[0])
  np.testing.assert_allclose(
      np.asarray(got), ref.min_distances(pools[0], annotated[0], "euclidean"), atol=2e-3
  )


def _inputs():
  rng = np.random.default_rng(12)
  return [ref.unit_rows(rng, 20, 4), ref.unit_rows(rng, 15, 4)], [np.zeros((0, 4), np.float32)] * 2


def _with(arrays, m, value):
  arrays = list(arrays)
  arrays[m] = value
  return arrays


@pytest.mark.parametrize(
    "change,match",
    [
        (
            lambda p, a, kw: (_with(p, 1, np.where(np.eye(15, 4) > 0, np.nan, p[1])), a, kw),
            r"pools\[1\] \(modality 1\) contains NaN or inf \(first at row 0\)",
        ),
        (
            lambda p, a, kw: (p, _with(a, 0, np.full((2, 4), np.inf, np.float32)), kw),
            r"annotated\[0\] \(modality 0\) contains NaN or inf",
        ),
        (
            lambda p, a, kw: (_with(p, 1, p[1][:, :3]), a, kw),
            r"pools\[1\] \(modality 1\) has dimension 3 but pools\[0\]",
        ),
        (
            lambda p, a, kw: (p, _with(a, 1, np.zeros((2, 5), np.float32)), kw),
            r"annotated\[1\] \(modality 1\) has dimension 5",
        ),
        (lambda p, a, kw: (p, a, {**kw, "batch_size": 9}), r"batch_size=9 > coreset_size=8"),
        (
            lambda p, a, kw: (p, a, {**kw, "coreset_size": 16}),
            r"coreset_size=16 > pool size 15 of pools\[1\] \(modality 1\)",
        ),
        (lambda p, a, kw: (p, a, {**kw, "strategy": "bald"}), r"strategy='bald' is unknown"),
        (lambda p, a, kw: (p, a, {**kw, "metric": "manhattan"}), r"metric='manhattan' is unknown"),
        (lambda p, a, kw: (p[:1], a[:1], kw), r"pools has 1 modalities; .* at least 2"),
        (lambda p, a, kw: (p, a[:1], kw), r"annotated has 1 modalities but pools has 2"),
        (
            lambda p, a, kw: (_with(p, 0, p[0][0]), a, kw),
            r"pools\[0\] \(modality 0\) has shape \(4,\)",
        ),
    ],
)
def test_bad_input_raises_a_clear_value_error(change, match):
  pools, annotated = _inputs()
  kwargs = dict(
      strategy="ours", batch_size=4, coreset_size=8, key=jax.random.key(0), metric="euclidean"
  )
  pools, annotated, kwargs = change(pools, annotated, kwargs)
  strategy = kwargs.pop("strategy")
  with pytest.raises(ValueError, match=match):
    acquisition.select(strategy, pools, annotated, **kwargs)


def test_bad_input_to_building_blocks_and_state():
  pools, annotated = _inputs()
  with pytest.raises(ValueError, match=r"num_select=21 > 20 points"):
    acquisition.kcenter_greedy(pools[0], 21)
  with pytest.raises(ValueError, match=r"candidates has dimension 3 but queries has 4"):
    acquisition.margins(pools[0], pools[1][:, :3])
  with pytest.raises(ValueError, match=r"centers contains NaN or inf"):
    acquisition.min_distances(pools[0], np.full((1, 4), np.nan, np.float32))
  state = acquisition.init_state(pools, annotated)
  with pytest.raises(ValueError, match=r"removed\[1\] \(modality 1\) holds positions outside"):
    acquisition.update_state(state, [np.array([0]), np.array([15])], annotated)
  with pytest.raises(ValueError, match=r"removed\[0\] \(modality 0\) repeats a position"):
    acquisition.update_state(state, [np.array([2, 2]), np.array([], int)], annotated)


@pytest.mark.parametrize("strategy", ["ours", "coreset", "random", "uncertainty", "badge"])
def test_shrinking_pool_reuses_compiled_programs(strategy):
  # The package re-exports the function `select`, which hides the module of the same name.
  select_lib = importlib.import_module("mmal_jax.acquisition.select")
  cores = [
      select_lib._ours,
      select_lib._uncertainty,
      select_lib._random_subset,
      kcenter.kcenter_sq,
      badge.kmeanspp,
      distances.min_sq_distances,
  ]
  rng = np.random.default_rng(11)
  sizes = []
  # Rounds 2-4 of a run: the pools shrink and an annotated set grows by 10 items a round. The
  # other annotated set stays empty, so "ours" keeps choosing that modality (the modality is a
  # static argument: one compile per modality is by design).
  for round_, n in enumerate((290, 280, 270)):
    pools = [ref.unit_rows(rng, n, 8), ref.unit_rows(rng, n + 3, 8)]
    annotated = [ref.unit_rows(rng, 20 + 10 * round_, 8), np.zeros((0, 8), np.float32)]
    sel = acquisition.select(
        strategy, pools, annotated, batch_size=10, coreset_size=20, key=jax.random.key(round_)
    )
    assert all(0 <= i < len(pools[m]) for m, i in zip(sel.modality, sel.index))
    sizes.append([f._cache_size() for f in cores])  # pylint: disable=protected-access
  assert sizes[2] == sizes[1] == sizes[0]


def test_buckets_bound_the_padding_and_the_number_of_shapes():
  n = np.arange(1, 300_000)
  b = np.array([padding.bucket(int(k)) for k in n])
  assert padding.bucket(0) == 0
  assert (b >= n).all() and (b % 256 == 0).all()
  assert ((b - n) <= np.maximum(255, n / 32)).all()  # at most 255 rows or 3.1% of padding
  assert np.all(np.diff(b) >= 0)  # a shrinking pool never grows its shape
  assert len(np.unique(b[(n > 131_072) & (n <= 262_144)])) <= 32  # <= 32 shapes per doubling


@pytest.mark.parametrize("strategy", ["ours", "coreset", "random", "uncertainty", "badge"])
def test_padding_does_not_change_the_selection(strategy, monkeypatch):
  rng = np.random.default_rng(13)
  pools = [ref.unit_rows(rng, 37, 6), ref.unit_rows(rng, 41, 6)]
  annotated = [ref.unit_rows(rng, 5, 6), ref.unit_rows(rng, 7, 6)]
  picks = []
  for bucket in (padding.bucket, lambda n: n, lambda n: n + 300 if n else 0):
    monkeypatch.setattr(padding, "bucket", bucket)
    sel = acquisition.select(
        strategy, pools, annotated, batch_size=6, coreset_size=12, key=jax.random.key(4)
    )
    picks.append((sel.modality.tolist(), sel.index.tolist()))
  assert picks[1] == picks[0] == picks[2]
  assert len(set(zip(*picks[0]))) == 6


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_every_pool_placement_builds_the_same_state(metric, storage):
  # padding.padded_f32 pads a host pool (float32 or float64) and a pool on one CPU device through
  # an aligned host buffer, and a pool sharded over devices on the devices: the padded pools and
  # caches must be the same bits (to float32 rounding for the sharded pool, whose reductions run
  # per shard), and the caches the NumPy float64 distances to the annotated set.
  rng = np.random.default_rng(14)
  pools = [ref.unit_rows(rng, 1000, 16) * 3, ref.unit_rows(rng, 904, 16)]  # 1000 -> 1024 rows
  annotated = [ref.unit_rows(rng, 37, 16), ref.unit_rows(rng, 0, 16)]
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data", None))
  placements = {
      "host": pools,
      "host float64": [p.astype(np.float64) for p in pools],
      "one device": [jax.device_put(p, jax.devices()[3]) for p in pools],
      "sharded": [jax.device_put(p, sharding) for p in pools],
  }
  states = {
      name: acquisition.init_state(p, annotated, metric=metric, storage=storage)
      for name, p in placements.items()
  }
  host = states["host"]
  for m, n in enumerate((1000, 904)):
    pool = np.asarray(host.padded_pools[m].astype(np.float32))
    cache = np.asarray(host.padded_min_sq[m])
    assert pool.shape == (padding.bucket(n), 16) and not pool[n:].any()
    assert (cache[n:] == -np.inf).all()
    for name, state in states.items():
      assert state.sizes == host.sizes, name
      for got, want in (
          (state.padded_pools[m].astype(np.float32), pool),
          (state.padded_min_sq[m], cache),
      ):
        got = np.asarray(got)
        if name == "sharded":
          np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
          assert got.tobytes() == want.tobytes(), (name, m)
    stored = pool[:n].astype(np.float64)  # bfloat16 storage: distances of the rounded values
    np.testing.assert_allclose(
        np.asarray(host.min_distances()[m]),
        ref.min_distances(stored, annotated[m], metric),
        atol=2e-3,
    )
  assert states["sharded"].padded_pools[0].sharding.spec == P("data", None)


def test_a_host_pool_is_copied_once_into_a_buffer_the_device_uses():
  rng = np.random.default_rng(15)
  x = ref.unit_rows(rng, 1000, 16)
  buffer = padding.host_padded(x, 1024)
  assert buffer.dtype == np.float32 and buffer.ctypes.data % padding.HOST_ALIGN == 0
  assert jax.device_put(buffer).unsafe_buffer_pointer() == buffer.ctypes.data  # used in place
  np.testing.assert_array_equal(buffer[:1000], x)
  assert not buffer[1000:].any()
  for y in (x, x.astype(np.float64), jax.device_put(x, jax.devices()[2])):
    np.testing.assert_array_equal(np.asarray(padding.padded_f32(y, 1024)), buffer)
