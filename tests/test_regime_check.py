"""experiments/regime_check.py's own metrics: caption parsing against the attributes a caption was
written from, the pseudo-alignment ceilings against counts done by hand, and the criteria's
pass/fail on summaries at and around their thresholds."""

import itertools
import math

import pytest

from experiments import captions
from experiments import regime_check
from mmal_jax.data import synthetic


def _objects(za, ca, sa, zb, cb, sb):
  return frozenset({(za, ca, sa), (zb, cb, sb)})


@pytest.mark.parametrize(
    "template", list(itertools.chain(*synthetic.TEMPLATES.values())), ids=lambda t: t[:24]
)
def test_caption_keys_recover_the_attributes_of_every_two_object_template(template):
  for (za, zb), (ca, cb), (sa, sb), bg in [
      (("small", "big"), ("red", "blue"), ("circle", "square"), "navy"),
      (("big", "big"), ("white", "cyan"), ("cross", "cross"), "black"),
  ]:
    caption = template.format(za=za, ca=ca, sa=sa, zb=zb, cb=cb, sb=sb, bg=bg)
    aware, bag = captions.caption_keys(caption)
    assert aware == (_objects(za, ca, sa, zb, cb, sb), bg), caption
    assert bag == (tuple(sorted((ca, cb))), tuple(sorted([(za, sa), (zb, sb)])), bg), caption


def test_caption_keys_reject_what_they_cannot_parse():
  assert captions.caption_keys("a small red circle on a navy background") is None  # 1 object
  # An unknown background word, and a caption that names no size.
  assert (
      captions.caption_keys("a small red circle and a big blue square on a pink background") is None
  )
  assert captions.caption_keys("a red circle and a blue square on a navy background") is None


def test_ceilings_count_items_that_share_a_key():
  # Captions 0 and 1 are color-swap twins (same bag key, different aware keys); caption 2 is
  # caption 0 in another template (same aware key); caption 3 is alone.
  texts = [
      "a small red circle to the left of a big blue square on a navy background",
      "a small blue circle to the left of a big red square on a navy background",
      "the small circle is red and the big square is blue on a navy background",
      "a big green cross above a small white diamond on a teal background",
  ]
  got = captions.pseudo_align_ceilings(texts)
  # aware keys: {0, 2} share one, 1 and 3 alone: (1/2 + 1 + 1/2 + 1) / 4.
  assert got["aware"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
  # bag keys: {0, 1, 2} share one, 3 alone: (1/3 * 3 + 1) / 4.
  assert got["bag"] == pytest.approx((1 / 3 * 3 + 1) / 4)
  unparsed = captions.pseudo_align_ceilings(texts + ["a red circle"])
  assert math.isnan(unparsed["aware"]) and math.isnan(unparsed["bag"])


def _summary(pre_group, pre_align, g5, g30, align30):
  def ms(x):
    return dict(mean=x, se=0.0)

  return {
      "0.0": dict(group=ms(pre_group), pseudo_align_acc=ms(pre_align)),
      "0.05": dict(group=ms(g5), pseudo_align_acc=ms(0.5)),
      "0.3": dict(group=ms(g30), pseudo_align_acc=ms(align30)),
  }


def _verdicts(summary):
  return {name: check(summary) for name, _, _, check in regime_check.CRITERIA}


def test_criteria_pass_at_their_thresholds_and_fail_just_beyond():
  at = _verdicts(_summary(pre_group=0.15, pre_align=0.3, g5=0.3, g30=0.5, align30=0.6))
  assert {k: v[1] for k, v in at.items() if k != "C4b"} == dict(
      C1=True, C2=True, C3=True, C4a=True, C5=True
  )
  beyond = _verdicts(_summary(pre_group=0.151, pre_align=0.299, g5=0.299, g30=0.499, align30=0.599))
  assert {k: v[1] for k, v in beyond.items() if k != "C4b"} == dict(
      C1=False, C2=False, C3=False, C4a=False, C5=False
  )
  level = _verdicts(_summary(pre_group=0.1, pre_align=0.4, g5=0.6, g30=0.7, align30=0.8))
  assert level["C4b"] == (pytest.approx(0.1), True)
  steep = _verdicts(_summary(pre_group=0.1, pre_align=0.4, g5=0.3, g30=0.6, align30=0.8))
  assert steep["C4b"] == (pytest.approx(0.3), False)
