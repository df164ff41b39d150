"""Acquisition building blocks and strategies against the float64 reference in test_acquisition_reference."""

import jax
import numpy as np
import pytest

from mmal_jax import acquisition
from mmal_jax.acquisition import badge as badge_lib
import test_acquisition_reference as ref

# Decisions closer than this (in distance or margin units) could flip under float32 rounding;
# tests that compare selections assert that their data stays clear of it.
TIE_RESOLUTION = 1e-5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("n,m,block", [(37, 11, 4), (64, 0, None), (5, 130, None)])
def test_min_distances_matches_brute_force(metric, n, m, block):
  rng = np.random.default_rng(n + m)
  points = (
      rng.standard_normal((n, 6)).astype(np.float32) * 2
  )  # not unit norm: cosine must normalize
  centers = rng.standard_normal((m, 6)).astype(np.float32)
  got = np.asarray(acquisition.min_distances(points, centers, metric=metric, block_size=block))
  want = ref.min_distances(points, centers, metric)
  assert got.shape == (n,) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("with_centers", [False, True])
def test_kcenter_matches_reference(metric, with_centers):
  rng = np.random.default_rng(1)
  points = ref.unit_rows(rng, 120, 10)
  centers = ref.unit_rows(rng, 7, 10) if with_centers else None
  picks, cache = acquisition.kcenter_greedy(points, 15, centers, metric=metric)
  want_picks, want_cache, gap = ref.kcenter(
      points, 15, np.zeros((0, 10)) if centers is None else centers, metric
  )
  assert gap > TIE_RESOLUTION, "test data has a near-tie; change the seed"
  np.testing.assert_array_equal(np.asarray(picks), want_picks)
  np.testing.assert_allclose(np.asarray(cache), want_cache, atol=2e-3)
  if not with_centers:
    assert int(picks[0]) == 0  # documented: no centers -> first pick is index 0


def test_kcenter_with_duplicates_never_repeats_a_pick():
  rng = np.random.default_rng(2)
  distinct = ref.unit_rows(rng, 9, 5)
  points = distinct[rng.integers(0, 9, size=40)]  # heavy duplication
  n_distinct = len(np.unique(points, axis=0))
  picks, cache = acquisition.kcenter_greedy(points, n_distinct + 3)
  picks = np.asarray(picks)
  assert len(set(picks.tolist())) == len(picks)
  # The first n_distinct picks cover every distinct row once; afterwards everything is covered.
  assert len(np.unique(points[picks[:n_distinct]], axis=0)) == n_distinct
  np.testing.assert_allclose(np.asarray(cache), 0.0, atol=2e-3)
  want, _, _ = ref.kcenter(points, n_distinct, np.zeros((0, 5)), "euclidean")
  np.testing.assert_array_equal(picks[:n_distinct], want)


@pytest.mark.parametrize("q,n,chunk", [(5, 300, 7), (3, 2, None), (1030, 40, 16)])
def test_margins_match_reference(q, n, chunk):
  rng = np.random.default_rng(q * n)
  queries, candidates = ref.unit_rows(rng, q, 8), ref.unit_rows(rng, n, 8)
  got = np.asarray(acquisition.margins(queries, candidates, chunk_size=chunk))
  np.testing.assert_allclose(got, ref.margins(queries, candidates), atol=1e-5)


def test_margins_of_duplicate_best_candidates_is_zero_and_single_candidate_is_inf():
  rng = np.random.default_rng(3)
  queries = ref.unit_rows(rng, 4, 8)
  candidates = np.concatenate([queries[:1], ref.unit_rows(rng, 10, 8), queries[:1]])
  got = np.asarray(acquisition.margins(queries, candidates, chunk_size=4))
  assert got[0] == pytest.approx(0.0, abs=1e-6)  # its two best candidates are identical
  np.testing.assert_allclose(got, ref.margins(queries, candidates), atol=1e-5)
  assert np.isinf(np.asarray(acquisition.margins(queries, candidates[:1]))).all()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(
    "sizes,k_ann,b,bc",
    [
        ((90, 70), 0, 6, 12),  # nothing annotated: modality 0 by the documented tie rule
        ((90, 70), 9, 6, 6),  # B_C == B
        ((60, 50, 40), 5, 5, 11),  # M = 3: summed margins
    ],
)
def test_ours_matches_reference(metric, sizes, k_ann, b, bc):
  rng = np.random.default_rng(sum(sizes) + k_ann)
  pools = [ref.unit_rows(rng, n, 12) for n in sizes]
  annotated = [ref.unit_rows(rng, k_ann + m, 12)[:k_ann] for m in range(len(sizes))]
  sel = acquisition.select(
      "ours", pools, annotated, batch_size=b, coreset_size=bc, key=jax.random.key(0), metric=metric
  )
  m, picks, gap = ref.ours(pools, annotated, b, bc, metric)
  assert gap > TIE_RESOLUTION, "test data has a near-tie; change the seed"
  np.testing.assert_array_equal(sel.modality, np.full(b, m))
  assert set(sel.index.tolist()) == picks
  if k_ann == 0:
    assert m == 0


def test_coreset_is_kcenter_of_the_chosen_modality():
  rng = np.random.default_rng(4)
  pools = [ref.unit_rows(rng, 80, 6), ref.unit_rows(rng, 60, 6)]
  annotated = [ref.unit_rows(rng, 4, 6), ref.unit_rows(rng, 4, 6)]
  modalities = set()
  for seed in range(6):
    sel = acquisition.select(
        "coreset", pools, annotated, batch_size=5, coreset_size=5, key=jax.random.key(seed)
    )
    m = int(sel.modality[0])
    modalities.add(m)
    want, _, gap = ref.kcenter(pools[m], 5, annotated[m], "euclidean")
    assert gap > TIE_RESOLUTION
    np.testing.assert_array_equal(sel.index, want)
  assert modalities == {0, 1}  # the key picks the modality


def test_uncertainty_matches_reference_both_directions():
  rng = np.random.default_rng(5)
  pools = [ref.unit_rows(rng, 70, 6), ref.unit_rows(rng, 50, 6)]
  sel = acquisition.select(
      "uncertainty",
      pools,
      [p[:0] for p in pools],
      batch_size=9,
      coreset_size=9,
      key=jax.random.key(0),
  )
  want, gap = ref.uncertainty(pools, 9)
  assert gap > TIE_RESOLUTION
  assert set(zip(sel.modality.tolist(), sel.index.tolist())) == want
  assert len(set(sel.modality.tolist())) == 2  # both directions actually contribute here


def test_random_is_decided_by_the_key():
  rng = np.random.default_rng(6)
  pools = [ref.unit_rows(rng, 40, 4), ref.unit_rows(rng, 30, 4)]
  annotated = [p[:0] for p in pools]
  run = lambda seed: acquisition.select(
      "random", pools, annotated, batch_size=30, coreset_size=30, key=jax.random.key(seed)
  )
  a, b, c = run(0), run(0), run(1)
  np.testing.assert_array_equal(a.index, b.index)
  assert not np.array_equal(a.index, c.index)
  for sel in (a, c):
    m = int(sel.modality[0])
    assert (sel.modality == m).all() and len(set(sel.index.tolist())) == 30
    assert sel.index.min() >= 0 and sel.index.max() < len(pools[m])


def test_badge_gradient_distances_match_explicit_gradient_embeddings():
  rng = np.random.default_rng(7)
  x, y = ref.unit_rows(rng, 12, 5), ref.unit_rows(rng, 6, 5)  # 6 classes <= TOP_K: exact
  scale = 10.0
  ids, vals = badge_lib.gradient_factors(x, [(y, len(y))], scale)
  logits = scale * x.astype(np.float64) @ y.T.astype(np.float64)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  a = p - np.eye(6)[p.argmax(1)]
  g = (a[:, :, None] * x.astype(np.float64)[:, None, :]).reshape(12, -1)
  g_sq = badge_lib.gradient_sq_norms(x, vals)
  np.testing.assert_allclose(np.asarray(g_sq), (g**2).sum(1), atol=1e-5)
  for j in (0, 5):
    got = badge_lib.gradient_sq_distances(x, ids, vals, g_sq, j)
    np.testing.assert_allclose(np.asarray(got), ((g - g[j]) ** 2).sum(1), atol=1e-5)
  picks = np.asarray(badge_lib.kmeanspp(x, ids, vals, jax.random.key(0), num_select=12))
  assert picks[0] == np.argmax((g**2).sum(1))  # BADGE starts at the largest gradient
  assert sorted(picks.tolist()) == list(range(12))  # D^2 sampling never repeats a pick


def test_badge_select_is_decided_by_the_key():
  rng = np.random.default_rng(8)
  pools = [ref.unit_rows(rng, 50, 6), ref.unit_rows(rng, 40, 6), ref.unit_rows(rng, 30, 6)]
  annotated = [p[:0] for p in pools]
  run = lambda seed: acquisition.select(
      "badge", pools, annotated, batch_size=8, coreset_size=8, key=jax.random.key(seed)
  )
  a, b = run(3), run(3)
  np.testing.assert_array_equal(a.index, b.index)
  np.testing.assert_array_equal(a.modality, b.modality)
  assert len(set(a.index.tolist())) == 8 and a.index.max() < len(pools[int(a.modality[0])])
