"""Evaluation against brute-force NumPy float64 references written here."""

import itertools

import numpy as np
import pytest

from mmal_jax import evaluation


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ref_colorswap(sim):
  """Per group, straight from the definitions; GroupMatch by enumerating both 2x2 matchings."""
  out = {"text": [], "image": [], "group": [], "groupmatch": []}
  for s in np.asarray(sim, np.float64):
    text = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]
    image = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    totals = {
        perm: sum(s[c, perm[c]] for c in range(2)) for perm in itertools.permutations(range(2))
    }
    truth = totals.pop((0, 1))
    out["text"].append(text)
    out["image"].append(image)
    out["group"].append(text and image)
    out["groupmatch"].append(all(truth > t for t in totals.values()))
  return {k: float(np.mean(v)) for k, v in out.items()}


def test_colorswap_scores_match_reference():
  rng = np.random.default_rng(0)
  sim = rng.normal(size=(257, 2, 2)).astype(np.float32)
  got = evaluation.colorswap_scores(sim)
  want = _ref_colorswap(sim)
  assert got.keys() == want.keys()
  for k in want:
    assert got[k] == pytest.approx(want[k], abs=1e-7), k
  # The four scores differ on random data, so a swapped definition would be caught.
  assert len({round(v, 6) for v in want.values()}) == 4


def test_colorswap_hand_cases():
  # Text score only: each image prefers its own caption, but caption 0 prefers image 1.
  text_only = [[0.5, 0.6], [0.1, 0.9]]
  # Image score only: each caption prefers its own image, but image 1 prefers caption 0 (0.8 > 0.7).
  image_only = [[0.9, 0.8], [0.1, 0.7]]
  got = evaluation.colorswap_scores(np.array([text_only, image_only]))
  assert got == pytest.approx(dict(text=0.5, image=0.5, group=0.0, groupmatch=1.0))


def test_colorswap_similarity_layout():
  rng = np.random.default_rng(1)
  zimg, ztxt = _unit(rng.normal(size=(6, 5))), _unit(rng.normal(size=(6, 5)))
  sim = evaluation.colorswap_similarity(zimg, ztxt)
  for g, c, i in itertools.product(range(3), range(2), range(2)):
    assert sim[g, c, i] == pytest.approx(float(ztxt[2 * g + c] @ zimg[2 * g + i]), abs=1e-6)


def test_recall_at_1_matches_reference():
  rng = np.random.default_rng(2)
  zimg = _unit(rng.normal(size=(300, 16)))
  ztxt = _unit(
      zimg + 1.2 * rng.normal(size=zimg.shape)
  )  # noisy captions: recall strictly in (0, 1)
  sim = zimg.astype(np.float64) @ ztxt.astype(np.float64).T
  want_i2t = float(np.mean(sim.argmax(1) == np.arange(300)))
  want_t2i = float(np.mean(sim.argmax(0) == np.arange(300)))
  got = evaluation.recall_at_1(zimg.astype(np.float32), ztxt.astype(np.float32))
  assert 0 < want_i2t < 1 and want_i2t != want_t2i
  assert got == pytest.approx(dict(i2t=want_i2t, t2i=want_t2i), abs=1e-7)


def _ref_margins(queries, keys, partner):
  sim = queries.astype(np.float64) @ keys.astype(np.float64).T
  order = np.argsort(-sim, axis=1)
  top = np.take_along_axis(sim, order[:, :2], axis=1)
  return order[:, 0] == partner, top[:, 0] - top[:, 1]


def test_margin_analysis_matches_reference():
  rng = np.random.default_rng(3)
  zimg = _unit(rng.normal(size=(50, 8)))
  ztxt = _unit(rng.normal(size=(45, 8)))
  img_partner = rng.permutation(50)[:50] % 45
  img_partner[:5] = -1  # missing partners: never correct
  txt_partner = rng.permutation(45)
  # Make about half the items truly closest to their partner so both groups are populated.
  ztxt[img_partner[5:25]] = _unit(zimg[5:25] + 0.3 * rng.normal(size=(20, 8)))
  c1, m1 = _ref_margins(zimg, ztxt, img_partner)
  c2, m2 = _ref_margins(ztxt, zimg, txt_partner)
  correct, margin = np.concatenate([c1, c2]), np.concatenate([m1, m2])
  got = evaluation.margin_analysis(
      zimg.astype(np.float32), ztxt.astype(np.float32), img_partner, txt_partner
  )
  assert 0 < correct.mean() < 1
  assert got["margin_correct"] == pytest.approx(margin[correct].mean(), abs=1e-5)
  assert got["margin_incorrect"] == pytest.approx(margin[~correct].mean(), abs=1e-5)
  assert got["pseudo_align_acc"] == pytest.approx(correct.mean(), abs=1e-9)


def test_pseudo_align_chunks_agree_with_one_block():
  rng = np.random.default_rng(4)
  q, k = _unit(rng.normal(size=(37, 6))).astype(np.float32), _unit(rng.normal(size=(20, 6))).astype(
      np.float32
  )
  best, margin = evaluation.pseudo_align(q, k, chunk=8)  # 37 rows: 5 chunks, the last padded
  ref_best = (q.astype(np.float64) @ k.T.astype(np.float64)).argmax(1)
  np.testing.assert_array_equal(best, ref_best)
  _, ref_margin = _ref_margins(q, k, ref_best)
  np.testing.assert_allclose(margin, ref_margin, atol=1e-5)


def test_pseudo_align_duplicate_keys_tie_to_the_lowest_index():
  rng = np.random.default_rng(5)
  k = _unit(rng.normal(size=(6, 4))).astype(np.float32)
  k[4] = k[1]  # an exact duplicate of key 1 (as duplicate captions give)
  best, margin = evaluation.pseudo_align(k[[1, 4, 2]], k)
  np.testing.assert_array_equal(best, [1, 1, 2])
  np.testing.assert_array_equal(margin[:2], [0.0, 0.0])
  assert margin[2] > 0


def test_margin_analysis_empty_groups_are_nan():
  z = _unit(np.eye(3, 4))
  all_correct = evaluation.margin_analysis(z, z, np.arange(3), np.arange(3))
  assert all_correct["pseudo_align_acc"] == 1.0
  assert np.isnan(all_correct["margin_incorrect"]) and all_correct[
      "margin_correct"
  ] == pytest.approx(1.0)
  too_small = evaluation.margin_analysis(z[:1], z[:1], np.zeros(1, int), np.zeros(1, int))
  assert all(np.isnan(v) for v in too_small.values())


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="shape"):
    evaluation.colorswap_scores(np.zeros((3, 2, 3)))
  with pytest.raises(ValueError, match="recall_at_1"):
    evaluation.recall_at_1(np.zeros((3, 4)), np.zeros((4, 4)))
  with pytest.raises(ValueError, match="2G"):
    evaluation.colorswap_similarity(np.zeros((3, 4)), np.zeros((3, 4)))


def test_split_scores_follow_the_test_split_type():
  from mmal_jax.data import ColorSwapGroups, DataError, Pairs  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(3)
  zimg, ztxt = _unit(rng.normal(size=(6, 4))), _unit(rng.normal(size=(6, 4)))
  pairs = Pairs(images=np.zeros((6, 2, 2, 3), np.uint8), texts=tuple("abcdef"))
  groups = ColorSwapGroups.of(pairs)
  assert evaluation.headline(groups) == "group" and evaluation.headline(pairs) == "i2t"
  sim = np.einsum("gcd,gid->gci", ztxt.reshape(3, 2, 4), zimg.reshape(3, 2, 4))
  assert evaluation.split_scores(groups, zimg, ztxt) == pytest.approx(_ref_colorswap(sim))
  s = zimg.astype(np.float64) @ ztxt.T.astype(np.float64)
  want = dict(i2t=np.mean(s.argmax(1) == np.arange(6)), t2i=np.mean(s.argmax(0) == np.arange(6)))
  assert evaluation.split_scores(pairs, zimg, ztxt) == pytest.approx(want)
  with pytest.raises(DataError, match="odd number"):
    ColorSwapGroups.of(pairs.take([0, 1, 2]))
