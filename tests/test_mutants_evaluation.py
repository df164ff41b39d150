"""Evaluation behaviours that a plausible one-line bug changes while the broader tests still pass
(issue 16's surviving mutants), against float64 NumPy references written here: key sets of 3-6
items whose similarities are all negative (a zero padded key would win), GroupMatch ties, recall
and scores on hand-made cases."""

import numpy as np
import pytest

from mmal_jax import evaluation


def _negative(rng, q, k, d=4):
  """Unit queries along +e0 and keys along -e0: every query-key similarity is negative."""
  a, b = rng.standard_normal((q, d)) * 0.3, rng.standard_normal((k, d)) * 0.3
  a[:, 0], b[:, 0] = 2.0, -2.0
  unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
  return unit(a), unit(b)


def _ref_top2(q, k):
  s = np.asarray(q, np.float64) @ np.asarray(k, np.float64).T
  order = np.sort(s, axis=1)
  return s.argmax(1), order[:, -1] - order[:, -2]


@pytest.mark.parametrize("num_keys", [2, 3, 5, 6])
def test_pseudo_align_ignores_padded_keys_when_every_similarity_is_negative(num_keys):
  rng = np.random.default_rng(num_keys)
  q, k = _negative(rng, 5, num_keys)
  best, margin = evaluation.pseudo_align(q, k, chunk=2)
  ref_best, ref_margin = _ref_top2(q, k)
  np.testing.assert_array_equal(best, ref_best)
  np.testing.assert_allclose(margin, ref_margin, atol=1e-5)


def test_margin_analysis_on_tiny_negative_sets_and_items_without_partner():
  rng = np.random.default_rng(9)
  zimg, ztxt = _negative(rng, 4, 3)
  best_i, margin_i = _ref_top2(zimg, ztxt)
  best_t, margin_t = _ref_top2(ztxt, zimg)
  # Image 0's true partner is its pseudo-alignment; image 1 has no partner (-1) and must count as
  # incorrect whatever its best text is; the rest are wrong on purpose.
  img_partner = np.array([best_i[0], -1, (best_i[2] + 1) % 3, (best_i[3] + 1) % 3])
  txt_partner = np.array([best_t[0], (best_t[1] + 1) % 4, -1])
  correct = np.concatenate([best_i == img_partner, best_t == txt_partner])
  margin = np.concatenate([margin_i, margin_t])
  got = evaluation.margin_analysis(zimg, ztxt, img_partner, txt_partner)
  assert got["pseudo_align_acc"] == pytest.approx(correct.mean())
  assert got["margin_correct"] == pytest.approx(margin[correct].mean(), abs=1e-5)
  assert got["margin_incorrect"] == pytest.approx(margin[~correct].mean(), abs=1e-5)


def test_groupmatch_tie_is_not_a_win_and_strict_wins_count():
  # sim[g, c, i]; every value is exact in binary, so the ties below are exact in float32.
  # Group 0: true total 0.5 + 0.5 equals the swapped total 0.75 + 0.25: a tie, not a win.
  # Group 1: true total 1.125 > swapped 1.0 (a win), image won, text lost (0.5 < 0.5625).
  # Group 2: every similarity equal: nothing is won.
  sim = np.array(
      [
          [[0.5, 0.75], [0.25, 0.5]],
          [[0.625, 0.5625], [0.4375, 0.5]],
          [[0.25, 0.25], [0.25, 0.25]],
      ],
      np.float32,
  )
  got = evaluation.colorswap_scores(sim)
  assert got == pytest.approx(dict(text=0.0, image=1 / 3, group=0.0, groupmatch=1 / 3))
