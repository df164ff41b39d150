"""Acquisition behaviours that a plausible one-line bug changes while the broader tests still pass
(issue 16's surviving mutants), each checked against an independent float64 NumPy reference
(test_acquisition_reference, or written out here) on inputs small enough to expose it: candidate
sets of 3-6 items whose similarities are all negative (so a zero padded row would win), rounds of
one item, duplicated and unnormalised rows, several chunks, three modalities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmal_jax import acquisition
from mmal_jax.acquisition import badge as badge_lib
from mmal_jax.acquisition import padding
from mmal_jax.acquisition import scores
import test_acquisition_reference as ref


def _negative_pools(rng, sizes, d=4):
  """Unit rows whose cross-modal similarities are all negative: modality 0 points along +e0,
  the others along -e0 (so every real candidate scores < 0 and a zero padded row would score 0)."""
  pools = []
  for m, n in enumerate(sizes):
    x = rng.standard_normal((n, d)) * 0.3
    x[:, 0] = 2.0 if m == 0 else -2.0
    pools.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
  return pools


def _padded(x, rows):
  return np.concatenate([x, np.zeros((rows - len(x), x.shape[1]), x.dtype)])


@pytest.mark.parametrize("chunk", [None, 2])
def test_margins_ignore_padded_candidates_when_every_score_is_negative(chunk):
  rng = np.random.default_rng(0)
  q, c = _negative_pools(rng, (5, 3))
  got = scores.margins_f32(q, _padded(c, 8), chunk_size=chunk, num_candidates=np.int32(3))
  want = ref.margins(q, c)
  assert (q.astype(np.float64) @ c.T.astype(np.float64)).max() < 0  # a zero row would be top-1
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_softmax_top_k_normalises_over_every_chunk_and_no_padding():
  rng = np.random.default_rng(1)
  q, c = ref.unit_rows(rng, 4, 5), ref.unit_rows(rng, 7, 5)
  probs, ids = scores.softmax_top_k(
      q, _padded(c, 9), 10.0, k=3, chunk_size=2, num_candidates=np.int32(7)
  )
  z = 10.0 * q.astype(np.float64) @ c.T.astype(np.float64)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  order = np.argsort(-p, axis=1, kind="stable")[:, :3]
  np.testing.assert_array_equal(np.asarray(ids), order)
  np.testing.assert_allclose(np.asarray(probs), np.take_along_axis(p, order, 1), atol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_selection_on_tiny_pools_with_negative_scores_matches_reference(metric):
  rng = np.random.default_rng(2)
  pools = _negative_pools(rng, (6, 4))
  annotated = [p[:0] for p in pools]
  key = jax.random.key(0)
  sel = acquisition.select(
      "uncertainty", pools, annotated, batch_size=3, coreset_size=3, key=key, metric=metric
  )
  want, gap = ref.uncertainty(pools, 3)
  assert gap > 1e-4
  assert set(zip(sel.modality.tolist(), sel.index.tolist())) == want
  for m in (0, 1):
    sel = acquisition.select(
        "ours", pools, annotated, batch_size=2, coreset_size=4, key=key, metric=metric, modality=m
    )
    want, gap = ref.ours_in(pools, annotated, m, 2, 4, metric)
    assert gap > 1e-4
    assert set(sel.index.tolist()) == want and (sel.modality == m).all()


def _gradient_embeddings(x, others, scale):
  """f64[N, sum_o C_o d]: BADGE's explicit gradient embeddings concat_o (p_o - e_yhat_o) (x) x."""
  x = np.asarray(x, np.float64)
  blocks = []
  for y in others:
    z = scale * x @ np.asarray(y, np.float64).T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    a = p - np.eye(len(y))[p.argmax(1)]
    blocks.append((a[:, :, None] * x[:, None, :]).reshape(len(x), -1))
  return np.concatenate(blocks, axis=1)


def _kmeanspp_reference(x, others, key, num_select, rows, scale):
  """float64 k-means++ seeding on the explicit gradient embeddings g = concat_o (p_o - e_yhat) (x)
  x, with JAX's Gumbel draws of each step injected (jax.random.categorical draws
  argmax(logits + gumbel(key_i))); returns (picks, smallest gap between the best and the
  runner-up at any draw)."""
  g = _gradient_embeddings(x, others, scale)
  picks = [int(np.argmax((g**2).sum(1)))]
  d2 = ((g - g[picks[0]]) ** 2).sum(1)
  gap = np.inf
  for i in range(1, num_select):
    noise = np.asarray(jax.random.gumbel(jax.random.fold_in(key, i), (rows,), jnp.float32))
    free = np.ones(len(x), bool)
    free[picks] = False
    with np.errstate(divide="ignore"):
      logits = np.where(free & (d2 > 0), np.log(np.maximum(d2, 1e-300)), -np.inf)
    if not np.isfinite(logits).any():
      logits = np.where(free, 0.0, -np.inf)
    total = np.sort(logits + noise[: len(x)])
    gap = min(gap, total[-1] - total[-2])
    j = int(np.argmax(logits + noise[: len(x)]))
    picks.append(j)
    d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(1))
  return np.array(picks), gap


def test_badge_matches_float64_kmeanspp_with_the_same_draws():
  # Three modalities (class ids of the two others must not collide), padded pools (padding is
  # no class and never a pick), every class count <= TOP_K (the truncation is then exact).
  rng = np.random.default_rng(3)
  x, y1, y2 = ref.unit_rows(rng, 7, 4), ref.unit_rows(rng, 5, 4), ref.unit_rows(rng, 4, 4)
  key, scale = jax.random.key(5), 3.0
  picks = badge_lib.badge(
      _padded(x, 10),
      np.int32(7),
      [(_padded(y1, 8), np.int32(5)), (_padded(y2, 6), np.int32(4))],
      key,
      5,
      scale,
  )
  want, gap = _kmeanspp_reference(x, [y1, y2], key, 5, 10, scale)
  assert gap > 1e-3
  np.testing.assert_array_equal(np.asarray(picks), want)


def test_gradient_distances_with_a_larger_later_modality_match_dense_float64():
  # The second other modality (8 rows) is larger than the first's padded size (4): shifted down
  # instead of up by that offset, its class ids 4..7 would land on the first's 0..3, and the
  # shared-class terms of |g_i - g_j|^2 would pair different classes. Reference: the explicit
  # float64 gradient embeddings g = concat_o (p_o - e_yhat) (x) x (every class count <= TOP_K).
  rng = np.random.default_rng(8)
  x, y1, y2 = ref.unit_rows(rng, 6, 4), ref.unit_rows(rng, 3, 4), ref.unit_rows(rng, 8, 4)
  scale = 3.0
  ids, vals = badge_lib.gradient_factors(
      x, [(_padded(y1, 4), np.int32(3)), (y2, np.int32(8))], scale
  )
  g_sq = badge_lib.gradient_sq_norms(x, vals)
  g = _gradient_embeddings(x, [y1, y2], scale)
  for j in range(len(x)):
    got = np.asarray(badge_lib.gradient_sq_distances(x, ids, vals, g_sq, j))
    np.testing.assert_allclose(got, ((g - g[j]) ** 2).sum(1), atol=1e-5, err_msg=f"j={j}")


def test_badge_on_duplicates_draws_every_row_once():
  # Four distinct rows three times each: after four picks every distance is 0, and the draw is
  # uniform among the rows not yet drawn; a drawn row must never come back.
  rng = np.random.default_rng(4)
  x = np.repeat(ref.unit_rows(rng, 4, 3), 3, axis=0)
  y = ref.unit_rows(rng, 5, 3)
  ids, vals = badge_lib.gradient_factors(x, [(y, 5)], 10.0)
  for seed in range(3):
    picks = np.asarray(badge_lib.kmeanspp(x, ids, vals, jax.random.key(seed), num_select=12))
    assert sorted(picks.tolist()) == list(range(12))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kcenter_from_unnormalised_centers_matches_reference(metric):
  rng = np.random.default_rng(5)
  points = ref.unit_rows(rng, 12, 3) * rng.uniform(0.5, 3.0, (12, 1)).astype(np.float32)
  centers = ref.unit_rows(rng, 3, 3) * np.float32(4.0)
  picks, dist = acquisition.kcenter_greedy(points, 4, centers, metric=metric)
  want, cache, gap = ref.kcenter(points, 4, centers, metric)
  assert gap > 1e-3
  np.testing.assert_array_equal(np.asarray(picks), want)
  np.testing.assert_allclose(np.asarray(dist), cache, atol=1e-3)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_duplicated_unnormalised_rows_give_zero_distances_not_nan(metric):
  # |x|^2 + |c|^2 - 2<x,c> of a row and its copy cancels to +-rounding; clamped at 0, never NaN.
  rng = np.random.default_rng(6)
  points = (rng.standard_normal((64, 16)) * 300).astype(np.float32)
  centers = np.concatenate([points[::-1], points[:5] * np.float32(3.0)])
  dist = np.asarray(acquisition.min_distances(points, centers, metric=metric))
  assert np.isfinite(dist).all() and (dist >= 0).all()
  np.testing.assert_allclose(dist, 0.0, atol=2.0 if metric == "euclidean" else 1e-5)
  picks, cover = acquisition.kcenter_greedy(
      np.concatenate([points, points]), 70, points[:1], metric=metric
  )
  assert len(set(np.asarray(picks).tolist())) == 70
  assert np.isfinite(np.asarray(cover)).all() and (np.asarray(cover) >= 0).all()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_rounds_of_one_item_and_of_none_update_the_state_exactly(metric):
  rng = np.random.default_rng(7)
  pools = [ref.unit_rows(rng, 9, 4), ref.unit_rows(rng, 7, 4)]
  annotated = [ref.unit_rows(rng, 2, 4), ref.unit_rows(rng, 1, 4)]
  state = acquisition.init_state(pools, annotated, metric=metric)
  # Round 1: modality 0 loses two items and gains exactly one annotated item; modality 1 loses
  # one item and gains none (its cache must keep the padding masked).
  removed = [np.array([2, 5]), np.array([0])]
  added = [pools[0][2:3], pools[1][:0]]
  state = acquisition.update_state(state, removed, added)
  new_pools = [np.delete(p, r, axis=0) for p, r in zip(pools, removed)]
  new_annotated = [np.concatenate([a, x]) for a, x in zip(annotated, added)]
  for m in (0, 1):
    want = ref.min_distances(new_pools[m], new_annotated[m], metric)
    np.testing.assert_allclose(np.asarray(state.min_distances()[m]), want, atol=1e-4)
    padded = np.asarray(state.padded_min_sq[m])
    assert len(padded) == padding.bucket(len(new_pools[m]))
    assert (padded[len(new_pools[m]) :] == -np.inf).all()
  for strategy in ("ours", "coreset"):
    for m in (0, 1):
      got = acquisition.select_from_state(
          strategy, state, batch_size=2, coreset_size=3, key=jax.random.key(0), modality=m
      )
      want = acquisition.select(
          strategy,
          new_pools,
          new_annotated,
          batch_size=2,
          coreset_size=3,
          key=jax.random.key(0),
          metric=metric,
          modality=m,
      )
      np.testing.assert_array_equal(got.index, want.index)


def test_kcenter_may_pick_every_point():
  # num_select == N is allowed (only N + 1 is an error): farthest-first then orders all points.
  points = np.array([[0.0], [1.0], [10.0], [4.0]], np.float32)
  picks, dist = acquisition.kcenter_greedy(points, 4)
  want, cache, _ = ref.kcenter(points, 4, np.zeros((0, 1)), "euclidean")
  np.testing.assert_array_equal(np.asarray(picks), want)
  np.testing.assert_allclose(np.asarray(dist), cache, atol=1e-6)
  with pytest.raises(ValueError, match="num_select=5 > 4 points"):
    acquisition.kcenter_greedy(points, 5)


@pytest.mark.parametrize("m,scale", [(0, 10.0), (2, 3.0)])
def test_select_badge_matches_float64_kmeanspp_through_select(m, scale):
  """select("badge") on modality m: the classes are the other modalities' items (not m's own),
  at the caller's logit_scale, with the second half of the key; against the float64 reference."""
  rng = np.random.default_rng(20 + m)
  pools = [ref.unit_rows(rng, n, 4) for n in (7, 6, 8)]  # every class count <= TOP_K: exact
  key = jax.random.key(9)
  sel = acquisition.select(
      "badge",
      pools,
      [p[:0] for p in pools],
      batch_size=3,
      coreset_size=3,
      key=key,
      logit_scale=scale,
      modality=m,
  )
  others = [p for o, p in enumerate(pools) if o != m]
  rows, key_items = padding.bucket(len(pools[m])), jax.random.split(key)[1]
  want, gap = _kmeanspp_reference(pools[m], others, key_items, 3, rows, scale)
  assert gap > 1e-3
  assert (sel.modality == m).all()
  np.testing.assert_array_equal(sel.index, want)
  if scale != 10.0:  # the data tell the scales apart: the default scale picks otherwise
    default, _ = _kmeanspp_reference(pools[m], others, key_items, 3, rows, 10.0)
    assert default.tolist() != want.tolist()


def test_select_reads_the_annotated_sets_for_a_coverage_rule_strategy():
  """A strategy with modality="coverage" but coverage=False still gets step 1's least-covered
  modality (brute force: the largest distance from a pool item to its annotated set)."""
  rng = np.random.default_rng(21)
  pools = [ref.unit_rows(rng, 9, 3), ref.unit_rows(rng, 8, 3)]
  wants = []
  for covered in (0, 1):  # modality `covered` gets 6 annotated items, the other one
    annotated = [ref.unit_rows(rng, 6 if o == covered else 1, 3) for o in (0, 1)]
    gaps = [ref.min_distances(p, a, "euclidean").max() for p, a in zip(pools, annotated)]
    want = int(np.argmax(gaps))
    assert abs(gaps[0] - gaps[1]) > 1e-3
    seen = []

    def first_items(state, modality, *, batch_size, coreset_size, key):
      del state, coreset_size, key
      seen.append(modality)
      return np.arange(batch_size)

    strategy = acquisition.Strategy("first", first_items, modality="coverage", coverage=False)
    sel = acquisition.select(
        strategy, pools, annotated, batch_size=2, coreset_size=2, key=jax.random.key(0)
    )
    assert seen == [want] and (sel.modality == want).all()
    wants.append(want)
  assert wants == [1, 0]  # each time the less covered one, which is not always modality 0


def test_pad_rows_appends_zero_rows_up_to_rows_on_host_and_devices():
  """pad_rows(x, rows) is x then zero rows, exactly `rows` of them, for a NumPy array, an array on
  one device and one sharded along its rows over the 8 test devices (which keeps its sharding)."""
  rng = np.random.default_rng(23)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("rows",))
  along_rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows"))
  for shape in ((16,), (16, 3), (16, 2, 3)):
    x = rng.standard_normal(shape).astype(np.float32)
    for placed in (x, jnp.asarray(x), jax.device_put(x, along_rows)):
      for rows in (16, 24, 40):
        out = padding.pad_rows(placed, rows)
        assert out.shape == (rows,) + shape[1:]
        np.testing.assert_array_equal(np.asarray(out)[:16], x)
        np.testing.assert_array_equal(np.asarray(out)[16:], 0.0)
        if placed is not x and rows > 16 and isinstance(placed.sharding, type(along_rows)):
          assert out.sharding.spec == along_rows.spec


def test_host_padded_is_aligned_for_device_put_and_zero_padded():
  """host_padded's buffer starts at a HOST_ALIGN-byte boundary (jax.device_put on CPU then uses it
  in place) and holds x then zero rows, whatever the allocator returned."""
  rng = np.random.default_rng(22)
  for n, rows, d in ((3, 8, 5), (1, 1, 3), (10, 13, 7), (0, 4, 2)):
    for _ in range(4):  # several allocations: some land unaligned
      x = rng.standard_normal((n, d))
      out = padding.host_padded(x, rows)
      assert out.ctypes.data % padding.HOST_ALIGN == 0
      assert out.dtype == np.float32 and out.shape == (rows, d)
      np.testing.assert_array_equal(out[:n], x.astype(np.float32))
      np.testing.assert_array_equal(out[n:], 0.0)


def test_update_state_takes_an_empty_list_for_a_modality_that_lost_nothing():
  """removed[m] = [] (NumPy reads it as float64: no position, not a float one) is allowed."""
  rng = np.random.default_rng(24)
  pools = [ref.unit_rows(rng, 6, 3), ref.unit_rows(rng, 5, 3)]
  annotated = [ref.unit_rows(rng, 2, 3), ref.unit_rows(rng, 1, 3)]
  state = acquisition.init_state(pools, annotated)
  state = acquisition.update_state(state, [[], np.array([1])], [p[:0] for p in pools])
  assert state.sizes == (6, 4)
  for m, pool in enumerate([pools[0], np.delete(pools[1], 1, axis=0)]):
    want = ref.min_distances(pool, annotated[m], "euclidean")
    np.testing.assert_allclose(np.asarray(state.min_distances()[m]), want, atol=1e-4)
  with pytest.raises(ValueError, match=r"removed\[0\] \(modality 0\) must be a 1-D array of int"):
    acquisition.update_state(state, [np.array([0.0]), []], [p[:0] for p in pools])
