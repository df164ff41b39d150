"""Oracle: answers from the truth, one unit per query, no double purchase, exact replay from its log."""

import json

import numpy as np
import pytest

from mmal_jax.annotation.oracle import Oracle


def _truth():
  # 5 images, 4 texts; image 4 has no caption (missing-data variant); text k pairs with image perm[k].
  perm = np.array([2, 0, 3, 1])
  img_partner = np.full(5, -1)
  img_partner[perm] = np.arange(4)
  return img_partner, perm


def test_answers_and_budget():
  img_partner, txt_partner = _truth()
  o = Oracle((img_partner, txt_partner))
  np.testing.assert_array_equal(o.query(0, [4, 2]), [-1, 0])  # unanswered still costs
  assert o.spent == 2
  np.testing.assert_array_equal(o.query(1, [3]), [1])
  assert o.spent == 3
  np.testing.assert_array_equal(o.bought(0), [False, True, True, False, True])
  np.testing.assert_array_equal(o.bought(1), [True, False, False, True])
  imgs, txts = o.pairs()
  np.testing.assert_array_equal(imgs, [2, 1])
  np.testing.assert_array_equal(txts, [0, 3])
  for i, t in zip(imgs, txts):
    assert img_partner[i] == t and txt_partner[t] == i


def test_no_item_bought_twice():
  o = Oracle(_truth())
  o.query(0, [2])  # also buys text 0, its partner
  for modality, ids in ((0, [2]), (1, [0]), (0, [1, 1])):
    with pytest.raises(ValueError):
      o.query(modality, ids)
  with pytest.raises(ValueError, match="must lie in"):
    o.query(1, [4])
  assert o.spent == 1  # refused queries cost nothing


def test_log_replay_rebuilds_state():
  truth = _truth()
  o = Oracle(truth)
  o.query(1, [2, 1])
  o.query(0, [4])
  r = Oracle(truth, log=o.log)
  assert r.spent == o.spent
  for m in (0, 1):
    np.testing.assert_array_equal(r.bought(m), o.bought(m))
  for k in o.log:
    np.testing.assert_array_equal(r.log[k], o.log[k])
  with pytest.raises(ValueError):
    r.query(0, [3])  # image 3 was bought as text 2's partner before the replay
  forged = dict(o.log, partner=o.log["partner"][::-1])
  with pytest.raises(ValueError, match="ground truth"):
    Oracle(truth, log=forged)


def test_answer_buys_a_batch_in_order_and_the_log_replays_the_bought_sets():
  from mmal_jax.annotation.oracle import Answers, Queries  # pylint: disable=g-import-not-at-top

  img_partner, txt_partner = _truth()
  o = Oracle((img_partner, txt_partner))
  # Candidates best first: image 0 (reveals text 1), text 1 (revealed: skipped, unpaid), image 4
  # (no caption: paid, unanswered), text 0, text 3: the budget of 3 stops before text 3.
  queries = Queries(modality=np.array([0, 1, 0, 1, 1]), item=np.array([0, 1, 4, 0, 3]), budget=3)
  answers = o.answer(queries)
  np.testing.assert_array_equal(answers.modality, [0, 0, 1])
  np.testing.assert_array_equal(answers.item, [0, 4, 0])
  np.testing.assert_array_equal(answers.partner, [1, -1, 2])
  assert answers.modalities() == "image+text"
  # The learner's view from the log alone, against sets written out by hand.
  log = Answers.empty().concat(answers)
  assert np.flatnonzero(log.bought(0, 5)).tolist() == [0, 2, 4]  # queried 0, 4; revealed 2
  assert np.flatnonzero(log.bought(1, 4)).tolist() == [0, 1]  # queried 0; revealed 1
  images, texts = log.pairs()
  assert list(zip(images.tolist(), texts.tolist())) == [(0, 1), (2, 0)]
  back = Answers.from_json(json.loads(json.dumps(log.to_json())))  # as a checkpoint stores it
  for k in ("modality", "item", "partner"):
    np.testing.assert_array_equal(getattr(back, k), getattr(log, k))
  # A replayed oracle refuses what the log already bought.
  with pytest.raises(ValueError, match="already bought"):
    Oracle((img_partner, txt_partner), log=log.to_json()).query(0, [2])


def test_answers_bought_and_pairs_count_partner_id_zero_against_a_brute_force():
  """A log whose answers reveal image 0 and text 0 (id 0 is a partner like any other)."""
  from mmal_jax.annotation.oracle import Answers  # pylint: disable=g-import-not-at-top

  # Truth: image 0 - text 2, image 1 - text 0, image 2 - text 1; image 3 has no caption; image 4
  # and text 3 are never touched. Queries: text 2, image 3, image 1, text 1.
  modality, item, partner = [1, 0, 0, 1], [2, 3, 1, 1], [0, -1, 0, 2]
  log = Answers(modality, item, partner)
  for m, n in ((0, 5), (1, 4)):
    want = set()
    for mod, i, p in zip(modality, item, partner):
      if mod == m:
        want.add(i)
      elif p >= 0:
        want.add(p)
    assert set(np.flatnonzero(log.bought(m, n)).tolist()) == want, m
  assert log.bought(0, 5).tolist() == [True, True, True, True, False]
  images, texts = log.pairs()
  want_pairs = [
      (i, p) if mod == 0 else (p, i) for mod, i, p in zip(modality, item, partner) if p >= 0
  ]
  assert list(zip(images.tolist(), texts.tolist())) == want_pairs == [(0, 2), (1, 0), (2, 1)]


def test_a_later_round_spends_its_own_budget():
  """answer() counts the queries of this batch only, not the ones already spent."""
  from mmal_jax.annotation.oracle import Queries  # pylint: disable=g-import-not-at-top

  img_partner, txt_partner = _truth()
  o = Oracle((img_partner, txt_partner))
  first = o.answer(Queries(modality=np.array([1, 1, 0]), item=np.array([0, 3, 4]), budget=3))
  assert len(first) == 3 and o.spent == 3  # text 0 (image 2), text 3 (image 1), image 4 (none)
  # Round 2, budget 1: image 0 is the first candidate not yet bought; image 3 must stay unbought.
  queries = Queries(modality=np.array([0, 0, 0]), item=np.array([2, 0, 3]), budget=1)
  second = o.answer(queries)
  assert second.item.tolist() == [0] and second.partner.tolist() == [1] and o.spent == 4
  assert not o.is_bought(0, 3)
