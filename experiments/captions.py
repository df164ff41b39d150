"""The embedded data's captions read back into attributes (mmal_jax/data/synthetic.py's templates),
for the diagnostics of experiments/regime_check.py and experiments/twins.py."""

import collections

import numpy as np

from mmal_jax.data import synthetic


def caption_keys(caption):
  """(binding-aware key, bag-of-attributes key) of a ColorSwap-like caption, or None if unparsed.

  Aware: the set of (size, color, shape) objects and the background (layout ignored: some templates
  do not name it). Bag: the colors, the (size, shape)s and the background, each as a sorted tuple.
  """
  words = caption.split()
  if len(words) < 10:  # Shorter than two sized objects plus "on a {bg} background".
    return None
  bg = words[-2] if words[-2] in synthetic.BACKGROUNDS else None
  words = words[:-4]  # Drop "on a {bg} background".
  objects = []
  if words[0] == "the":  # the {z} {s} is {c} and the {z} {s} is {c}
    objects = [(words[1], words[4], words[2]), (words[7], words[10], words[8])]
  else:
    for i, w in enumerate(words[:-2]):
      if (
          w in synthetic.SIZES
          and words[i + 1] in synthetic.COLORS
          and words[i + 2] in synthetic.SHAPES
      ):
        objects.append((w, words[i + 1], words[i + 2]))
  if bg is None or len(objects) != 2:
    return None
  aware = (frozenset(objects), bg)
  bag = (tuple(sorted(c for _, c, _ in objects)), tuple(sorted((z, s) for z, _, s in objects)), bg)
  return aware, bag


def pseudo_align_ceilings(texts):
  """Expected pseudo-alignment accuracy of a model that embeds every caption by its meaning alone:
  1 / (number of items with the same key), averaged; for the aware and the bag keys."""
  keys = [caption_keys(t) for t in texts]
  if any(k is None for k in keys):
    return dict(aware=float("nan"), bag=float("nan"))
  out = {}
  for j, name in enumerate(("aware", "bag")):
    counts = collections.Counter(k[j] for k in keys)
    out[name] = float(np.mean([1 / counts[k[j]] for k in keys]))
  return out
