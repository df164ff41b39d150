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


def test_zero_shot_of_two_attributes_reads_each_attributes_own_prompts():
  """split_scores on a LabeledPairs split with two attributes of 3 and 2 classes and 1-3 prompts
  per class, against a reference that looks every prompt's embedding up by its text."""
  from mmal_jax.data.pairs import LabeledPairs  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(11)
  prompts = {
      "color": (("red one", "a red"), ("blue",), ("green", "a green", "the green")),
      "shape": (("square",), ("circle", "a circle")),
  }
  texts = [
      "red one",
      "a red",
      "blue",
      "green",
      "a green",
      "the green",
      "square",
      "circle",
      "a circle",
  ]
  d, n = 6, 24
  zprompt = {t: rng.standard_normal(d) for t in texts}  # unnormalised, as a text tower may give
  classes = {}
  for a, per_class in prompts.items():
    mean = np.stack([np.mean([zprompt[p] for p in ps], axis=0) for ps in per_class])
    classes[a] = mean / np.linalg.norm(mean, axis=1, keepdims=True)
  # Each image lies near one class of each attribute; a quarter of the labels name another class
  # (wrong on purpose), and image 0 shows two colors (right when either is its top class).
  labels, zimg = {}, np.zeros((n, d))
  for a, c in classes.items():
    shown = rng.integers(0, len(c), n)
    zimg += c[shown]
    labelled = np.where(np.arange(n) % 4 == 3, (shown + 1) % len(c), shown)
    labels[a] = np.eye(len(c), dtype=bool)[labelled]
  labels["color"][0] = True
  zimg = (zimg + 0.05 * rng.standard_normal((n, d))) / 2
  want = {}
  for a, c in classes.items():
    best = np.argmax(zimg @ c.T, axis=1)
    want[f"zeroshot_{a}"] = float(np.mean(labels[a][np.arange(n), best]))
  assert 0 < want["zeroshot_color"] < 1 and 0 < want["zeroshot_shape"] < 1
  test = LabeledPairs(
      images=np.zeros((n, 2, 2, 3), np.uint8),
      texts=tuple(f"t{i}" for i in range(n)),
      labels=labels,
      prompts=prompts,
  )
  assert evaluation.prompt_texts(test) == tuple(texts)
  zprompts = np.stack([zprompt[t] for t in texts]).astype(np.float32)
  zimg = zimg.astype(np.float32)
  got = evaluation.split_scores(test, zimg, zimg, zprompts)
  assert set(got) == {"i2t", "t2i", "zeroshot_color", "zeroshot_shape"}
  assert {k: got[k] for k in want} == pytest.approx(want, abs=1e-9)
  # The data tell the attributes' prompt ranges apart: the shape classes read from the color
  # attribute's first prompts score differently.
  wrong = np.stack([zprompt[t] for t in texts[:2]])
  wrong = wrong / np.linalg.norm(wrong, axis=1, keepdims=True)
  assert np.mean(labels["shape"][np.arange(n), np.argmax(zimg @ wrong.T, 1)]) != pytest.approx(
      want["zeroshot_shape"]
  )


def test_margin_analysis_with_exactly_two_keys_on_one_side():
  """Two texts, three images: each image still has a top-2 margin over the two texts."""
  rng = np.random.default_rng(12)
  zimg, ztxt = _negative(rng, 3, 2)
  best_i, margin_i = _ref_top2(zimg, ztxt)
  best_t, margin_t = _ref_top2(ztxt, zimg)
  img_partner = np.array([best_i[0], 1 - best_i[1], -1])
  txt_partner = np.array([best_t[0], (best_t[1] + 1) % 3])
  correct = np.concatenate([best_i == img_partner, best_t == txt_partner])
  margin = np.concatenate([margin_i, margin_t])
  got = evaluation.margin_analysis(zimg, ztxt, img_partner, txt_partner)
  assert got["pseudo_align_acc"] == pytest.approx(correct.mean())  # 2 of 5 right
  assert got["margin_correct"] == pytest.approx(margin[correct].mean(), abs=1e-5)
  assert got["margin_incorrect"] == pytest.approx(margin[~correct].mean(), abs=1e-5)


def test_pseudo_align_compiles_once_while_a_pool_shrinks_within_its_bucket():
  """Queries go in fixed chunks and keys are padded to the next power of two: 37 queries in chunks
  of 8 against 8, 7, 6, then 5 keys (one bucket of 8) need one compiled program."""
  rng = np.random.default_rng(13)
  d = 7  # a width no other test of this file uses, so their programs do not count here
  q = _unit_f32(rng.standard_normal((37, d)))
  keys = _unit_f32(rng.standard_normal((8, d)))
  before = evaluation._top2._cache_size()  # pylint: disable=protected-access
  for k in (8, 7, 6, 5):
    best, margin = evaluation.pseudo_align(q, keys[:k], chunk=8)
    ref_best, ref_margin = _ref_top2(q, keys[:k])
    np.testing.assert_array_equal(best, ref_best)
    np.testing.assert_allclose(margin, ref_margin, atol=1e-5)
  assert evaluation._top2._cache_size() - before <= 1  # pylint: disable=protected-access
  # The bucket is the smallest power of two >= n (by brute force).
  for n in range(1, 70):
    want = min(2**e for e in range(8) if 2**e >= n)
    assert evaluation._bucket(n) == want, n  # pylint: disable=protected-access


def _unit_f32(x):
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_colorswap_scores_every_tie_pattern_of_two_values():
  """All 16 groups with similarities in {0.25, 0.5} (exact in float32): every comparison of every
  score is tied alone in some group, and a tie is never a win (the definitions, strictly)."""
  import itertools  # pylint: disable=g-import-not-at-top

  sim = np.array(list(itertools.product([0.25, 0.5], repeat=4)), np.float32).reshape(16, 2, 2)
  text = [s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1] for s in sim]
  image = [s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0] for s in sim]
  match = [s[0, 0] + s[1, 1] > s[0, 1] + s[1, 0] for s in sim]
  want = dict(
      text=np.mean(text),
      image=np.mean(image),
      group=np.mean(np.logical_and(text, image)),
      groupmatch=np.mean(match),
  )
  assert evaluation.colorswap_scores(sim) == pytest.approx(want, abs=1e-7)
