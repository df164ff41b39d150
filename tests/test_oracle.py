"""Oracle: answers from the truth, one unit per query, no double purchase, exact replay from its log."""
import numpy as np
import pytest

from mmal_jax.oracle import Oracle


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
