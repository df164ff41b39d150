"""The embedded default: a procedural ColorSwap-like dataset and a pretraining corpus.

Each ColorSwap-like group is two rendered scenes of the same two objects (a size, a color and a
shape each, on a named dark background) whose colors are swapped, with captions that bind colors to
shapes and name everything else ("a small red circle to the left of a big blue square on a teal
background" / "a small blue circle to the left of a big red square on a teal background").
Groups are laid out as consecutive pairs (2g, 2g+1), as in `pairs.ColorSwapSplits`.

As in real ColorSwap, whose images differ in everything but the swapped colors, a pool item is
mostly told apart from the others by its content: sizes and backgrounds multiply the 1,120
(color, color, shape, shape) combinations by 24, so the one systematic confusion left for a model
that does not bind colors to shapes is the color-swap twin (experiments/regime_check.py computes
the pseudo-alignment ceilings from the captions: ~0.84 for a perfect reader, ~0.42 for a
bag-of-attributes one, on the default pool).

The training pool is long-tailed on purpose, as real collections are: its color/shape combinations
follow a Zipf law over a seeded ranking, and a fraction of its groups are near-duplicates of others
(same attributes, template and background; jittered geometry). The test groups draw combinations
with their own exponent (uniform by default), so covering the attribute space is what a good
selection buys. Apart from near-duplicates, pool captions are distinct where the templates allow it,
as in real ColorSwap: two captions that are the same string embed the same for any model, so every
image whose two best-matching texts are such a repeat has a margin of exactly 0, a tie that says
nothing about the model.

The pretraining corpus teaches colors, shapes, sizes, backgrounds, the caption templates and
two-object scenes, and binds colors to shapes only in a syntax the group captions never use ("a big
circle in red and a small square in blue"): single objects, pairs of one color, pairs of two colors
whose caption names colors and shapes in alphabetical order, postfix-bound pairs next to their
color-swapped twins, and pairs of two colors under the group templates with the colors assigned at
random (so the group syntax itself carries no binding), plus optional pairs of one shape in two
colors (colors bound to places). The model it gives knows every attribute and binding in the other
syntax, but scores low on the groups until a few annotated pairs carry binding over
(experiments/pretrain_synthetic.py has the measurements).

Everything is deterministic from the seed and cached on disk as .npz, keyed by a hash of every
generation parameter (`cache_dir`, else $MMAL_JAX_CACHE, else ~/.cache/mmal_jax).
"""

import dataclasses
import hashlib
import itertools
import json
import os

from absl import logging
import jax
import numpy as np
from PIL import Image, ImageDraw

from mmal_jax import files
from mmal_jax.data.pairs import ColorSwapSplits, DataError, Pairs

# Bump when rendering or sampling changes, so stale caches are not reused.
GENERATOR_VERSION = 3

COLORS = {
    "red": (220, 35, 35),
    "pink": (250, 135, 200),
    "yellow": (240, 225, 40),
    "green": (40, 185, 50),
    "blue": (45, 90, 240),
    "purple": (155, 50, 205),
    "white": (240, 240, 240),
    "cyan": (40, 215, 225),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
# Object radius ranges, as fractions of the image side: small objects are ~4 px across at 32 px,
# big ones ~6 px, so the two classes never overlap.
SIZES = {"small": (0.12, 0.14), "big": (0.18, 0.21)}
# Dark named backgrounds, each >= 70 (RGB L2) from the others and >= 100 from every object color.
BACKGROUNDS = {
    "black": (12, 12, 12),
    "gray": (95, 95, 95),
    "maroon": (95, 15, 40),
    "navy": (15, 20, 100),
    "teal": (10, 90, 80),
    "olive": (85, 85, 10),
}

# Object "a" is the left (horizontal) or top (vertical) one. Every caption names each object's
# size, color and shape and the background, so that a pool item is told apart from the others by
# its content; the color-swap twin is the one systematic confusion left for a model that does not
# bind colors to shapes.
_BG = " on a {bg} background"
TEMPLATES = {
    "horizontal": tuple(
        t + _BG
        for t in (
            "a {za} {ca} {sa} to the left of a {zb} {cb} {sb}",
            "a {zb} {cb} {sb} to the right of a {za} {ca} {sa}",
            "a {za} {ca} {sa} and a {zb} {cb} {sb}",
            "a {za} {ca} {sa} next to a {zb} {cb} {sb}",
            "the {za} {sa} is {ca} and the {zb} {sb} is {cb}",
        )
    ),
    "vertical": tuple(
        t + _BG
        for t in (
            "a {za} {ca} {sa} above a {zb} {cb} {sb}",
            "a {zb} {cb} {sb} below a {za} {ca} {sa}",
            "a {za} {ca} {sa} and a {zb} {cb} {sb}",
            "the {za} {sa} is {ca} and the {zb} {sb} is {cb}",
        )
    ),
}
SINGLE_TEMPLATES = tuple(
    t + _BG for t in ("a {z} {c} {s}", "one {z} {c} {s}", "the {z} {s} is {c}")
)
# Colors in alphabetical order, shapes (with their sizes) too: the caption says nothing about which
# color goes where.
UNBOUND_TEMPLATES = tuple(
    t + _BG
    for t in (
        "a {z1} {s1} and a {z2} {s2} colored {c1} and {c2}",
        "{c1} and {c2} shapes a {z1} {s1} and a {z2} {s2}",
    )
)
# Pretraining pairs that bind colors to places but not to shapes: two objects of one shape.
SAME_SHAPE_TEMPLATES = {
    "horizontal": tuple(
        t + _BG
        for t in (
            "a {za} {ca} {sa} to the left of a {zb} {cb} {sb}",
            "a {zb} {cb} {sb} to the right of a {za} {ca} {sa}",
        )
    ),
    "vertical": tuple(
        t + _BG
        for t in (
            "a {za} {ca} {sa} above a {zb} {cb} {sb}",
            "a {zb} {cb} {sb} below a {za} {ca} {sa}",
        )
    ),
}

# Pretraining pairs that bind colors to shapes in a syntax the group captions never use (the color
# after the shape, "a big circle in red"), in either object order.
POSTFIX_TEMPLATES = tuple(t + _BG for t in ("a {za} {sa} in {ca} and a {zb} {sb} in {cb}",))

_SUPERSAMPLE = 4
_NOISE_STD = 4.0


def vocabulary() -> tuple[str, ...]:
  """Every word any caption of this module can contain, sorted: the embedded word vocabulary."""
  templates = [
      *itertools.chain(*TEMPLATES.values()),
      *SINGLE_TEMPLATES,
      *UNBOUND_TEMPLATES,
      *itertools.chain(*SAME_SHAPE_TEMPLATES.values()),
      *POSTFIX_TEMPLATES,
  ]
  words = set(COLORS) | set(SHAPES) | set(SIZES) | set(BACKGROUNDS)
  for template in templates:
    words |= {w for w in template.split() if not w.startswith("{")}
  return tuple(sorted(words))


@dataclasses.dataclass(frozen=True)
class Mix:
  """How groups are drawn; the test split reads only `test_zipf_exponent` and `vertical_fraction`.

  zipf_exponent: P(k-th most common (color, color, shape, shape) combination) ~ 1 / k**zipf_exponent;
    0 = uniform. Sizes and backgrounds are uniform.
  near_duplicate_fraction: share of pool groups that copy another pool group with jittered geometry.
  vertical_fraction: share of scenes laid out top/bottom instead of left/right.
  test_zipf_exponent: exponent for the test groups (same ranking as the pool).
  """

  # 0.6 and 0.1: a perfect model could pseudo-align ~0.84 of the 1,400-item pool, one blind to
  # color-shape binding ~0.42 (experiments/regime_check.py computes both); at the previous 1.1 and
  # 0.15 over unnamed sizes and backgrounds these ceilings were 0.19 and 0.10.
  zipf_exponent: float = 0.6
  near_duplicate_fraction: float = 0.1
  vertical_fraction: float = 0.3
  test_zipf_exponent: float = 0.0

  def __post_init__(self):
    for name in ("zipf_exponent", "test_zipf_exponent"):
      if not 0.0 <= getattr(self, name) <= 10.0:
        raise DataError(
            f"synthetic mix {name}={getattr(self, name)} is out of range; use 0 (uniform)"
            " to 10 (almost all mass on one combination)"
        )
    for name in ("near_duplicate_fraction", "vertical_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise DataError(f"synthetic mix {name}={getattr(self, name)} must be a fraction in [0, 1]")
    if self.near_duplicate_fraction == 1.0:
      raise DataError(
          "synthetic mix near_duplicate_fraction=1 leaves no original groups to copy;"
          " use a value below 1"
      )


# ----------------------------------------------------------------------------------------------
# Rendering


def _shape_polygon(shape, cx, cy, r):
  if shape == "square":
    h = 0.82 * r
    return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
  if shape == "triangle":
    return [(cx, cy - r), (cx + 0.97 * r, cy + 0.78 * r), (cx - 0.97 * r, cy + 0.78 * r)]
  if shape == "diamond":
    return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
  if shape == "cross":
    w = 0.36 * r
    return [
        (cx - w, cy - r),
        (cx + w, cy - r),
        (cx + w, cy - w),
        (cx + r, cy - w),
        (cx + r, cy + w),
        (cx + w, cy + w),
        (cx + w, cy + r),
        (cx - w, cy + r),
        (cx - w, cy + w),
        (cx - r, cy + w),
        (cx - r, cy - w),
        (cx - w, cy - w),
    ]
  raise AssertionError(shape)


def _render(scene, image_size):
  """uint8[S, S, 3] of `scene` = dict(background=_background(...), objects=[...]).

  Objects are (shape, rgb, cx, cy, r) with positions and radius as fractions of the side. Each
  shape's coverage is drawn at 4x and box-filtered down, so edges stay smooth at 32 pixels.
  """
  big = image_size * _SUPERSAMPLE
  base, angle, slope, noise = scene["background"]
  ramp = (np.arange(image_size) + 0.5) / image_size * 2.0 - 1.0
  grad = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
  image = np.asarray(base, np.float32) + slope * grad[:, :, None]
  for shape, rgb, cx, cy, r in scene["objects"]:
    mask = Image.new("L", (big, big), 0)
    cx, cy, r = cx * big, cy * big, r * big
    if shape == "circle":
      ImageDraw.Draw(mask).ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
      ImageDraw.Draw(mask).polygon(_shape_polygon(shape, cx, cy, r), fill=255)
    alpha = (
        np.asarray(mask.resize((image_size, image_size), Image.BOX), np.float32)[:, :, None] / 255
    )
    image = image * (1.0 - alpha) + np.asarray(rgb, np.float32) * alpha
  return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def _background(rng, image_size, name):
  """(rgb near BACKGROUNDS[name], gradient angle, gradient slope, pixel noise f32[S, S, 3])."""
  base = np.asarray(BACKGROUNDS[name], np.float64) + rng.uniform(-8, 8, size=3)
  return (base, rng.uniform(0, 2 * np.pi), rng.uniform(0, 15), _noise(rng, image_size))


def _noise(rng, image_size):
  return rng.normal(0.0, _NOISE_STD, (image_size, image_size, 3)).astype(np.float32)


def _object_rgb(rng, color):
  return tuple(
      int(v) for v in np.clip(np.asarray(COLORS[color]) + rng.integers(-10, 11, 3), 0, 255)
  )


def _pick(rng, names):
  names = sorted(names)
  return names[rng.integers(len(names))]


# ----------------------------------------------------------------------------------------------
# ColorSwap-like groups


def _combinations():
  """All (color_a, color_b, shape_a, shape_b) with two colors and two shapes, in a fixed order."""
  colors = sorted(COLORS)
  return [
      (ca, cb, sa, sb)
      for ca, cb in itertools.permutations(colors, 2)
      for sa, sb in itertools.permutations(SHAPES, 2)
  ]


def _zipf_probs(n, exponent):
  p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
  return p / p.sum()


def _two_object_geometry(rng, layout, sizes):
  """[(cx, cy, r)] * 2 for objects a (left/top) and b of `sizes` (SIZES keys), never overlapping:
  centers are >= 0.44 apart along the layout and two big radii add up to <= 0.42."""
  along = (rng.uniform(0.22, 0.28), rng.uniform(0.72, 0.78))
  across = rng.uniform(0.3, 0.7, size=2)
  radius = [rng.uniform(*SIZES[z]) for z in sizes]
  if layout == "horizontal":
    return [(along[k], across[k], radius[k]) for k in range(2)]
  return [(across[k], along[k], radius[k]) for k in range(2)]


def _group_spec(rng, combo, mix, image_size):
  layout = "vertical" if rng.random() < mix.vertical_fraction else "horizontal"
  templates = TEMPLATES[layout]
  ca, cb = combo[:2]
  sizes = (_pick(rng, SIZES), _pick(rng, SIZES))
  bg = _pick(rng, BACKGROUNDS)
  return dict(
      combo=combo,
      sizes=sizes,
      bg=bg,
      layout=layout,
      template=templates[rng.integers(len(templates))],
      geometry=_two_object_geometry(rng, layout, sizes),
      background=_background(rng, image_size, bg),
      rgb=(_object_rgb(rng, ca), _object_rgb(rng, cb)),
  )


def _format(template, spec, ca, cb):
  sa, sb = spec["combo"][2:]
  za, zb = spec["sizes"]
  return template.format(ca=ca, sa=sa, za=za, cb=cb, sb=sb, zb=zb, bg=spec["bg"])


def _captions(spec, template):
  """The group's two captions under `template`: as drawn, and with the colors swapped."""
  ca, cb = spec["combo"][:2]
  return {_format(template, spec, ca, cb), _format(template, spec, cb, ca)}


def _distinct_captions(rng, specs):
  """`specs` with a group whose captions an earlier group already has moved to another template
  of its layout that none has used for them (at random); kept as is when every template is taken."""
  used, out = set(), []
  for spec in specs:
    if _captions(spec, spec["template"]) & used:
      free = [t for t in TEMPLATES[spec["layout"]] if not _captions(spec, t) & used]
      if free:
        spec = dict(spec, template=free[rng.integers(len(free))])
    used |= _captions(spec, spec["template"])
    out.append(spec)
  return out


def _near_duplicate(rng, spec, image_size):
  """Same attributes, template and background colors; geometry jittered, new pixel noise."""
  geometry = [
      (
          float(np.clip(cx + rng.uniform(-0.03, 0.03), 0.2, 0.8)),
          float(np.clip(cy + rng.uniform(-0.03, 0.03), 0.2, 0.8)),
          float(np.clip(r + rng.uniform(-0.01, 0.01), *SIZES[z])),
      )
      for (cx, cy, r), z in zip(spec["geometry"], spec["sizes"])
  ]
  return dict(
      spec, geometry=geometry, background=(*spec["background"][:3], _noise(rng, image_size))
  )


def _render_group(spec, image_size):
  """[(image, caption)] * 2: the scene as specified, then with the two colors swapped."""
  ca, cb, sa, sb = spec["combo"]
  out = []
  for (c1, c2), (rgb1, rgb2) in (((ca, cb), spec["rgb"]), ((cb, ca), spec["rgb"][::-1])):
    (xa, ya, ra), (xb, yb, rb) = spec["geometry"]
    scene = dict(
        background=spec["background"], objects=[(sa, rgb1, xa, ya, ra), (sb, rgb2, xb, yb, rb)]
    )
    out.append((_render(scene, image_size), _format(spec["template"], spec, c1, c2)))
  return out


def _pairs_from_groups(specs, image_size):
  rendered = [p for spec in specs for p in _render_group(spec, image_size)]
  return Pairs(images=np.stack([im for im, _ in rendered]), texts=tuple(t for _, t in rendered))


def _generate_colorswap_like(seed, num_train_groups, num_test_groups, image_size, mix):
  combos = _combinations()
  ranking = np.random.default_rng([seed, 0]).permutation(len(combos))
  train_rng = np.random.default_rng([seed, 1])
  num_dups = int(round(mix.near_duplicate_fraction * num_train_groups))
  num_unique = num_train_groups - num_dups
  picks = train_rng.choice(
      len(combos), size=num_unique, p=_zipf_probs(len(combos), mix.zipf_exponent)
  )
  specs = [_group_spec(train_rng, combos[ranking[k]], mix, image_size) for k in picks]
  # A stream of its own, so that the images and the test split stay exactly as drawn.
  specs = _distinct_captions(np.random.default_rng([seed, 4]), specs)
  specs += [
      _near_duplicate(train_rng, specs[k], image_size)
      for k in train_rng.integers(num_unique, size=num_dups)
  ]
  specs = [specs[k] for k in train_rng.permutation(len(specs))]

  test_rng = np.random.default_rng([seed, 2])
  picks = test_rng.choice(
      len(combos), size=num_test_groups, p=_zipf_probs(len(combos), mix.test_zipf_exponent)
  )
  test_specs = [_group_spec(test_rng, combos[ranking[k]], mix, image_size) for k in picks]
  return ColorSwapSplits(
      train=_pairs_from_groups(specs, image_size), test=_pairs_from_groups(test_specs, image_size)
  )


def colorswap_like(
    *,
    seed: int = 0,
    num_train_groups: int = 700,
    num_test_groups: int = 2000,
    image_size: int = 32,
    cache_dir=None,
    **mix,
) -> ColorSwapSplits:
  """The embedded ColorSwap-like dataset: train 2*num_train_groups pairs, test 2*num_test_groups.

  Images are uint8[N, image_size, image_size, 3]; pairs (2g, 2g+1) form group g. `mix` holds the
  `Mix` fields (zipf_exponent, near_duplicate_fraction, vertical_fraction, test_zipf_exponent).
  The test split does not depend on the pool size (num_train_groups, zipf_exponent,
  near_duplicate_fraction). The default takes a few seconds to generate, then comes from the cache.
  """
  unknown = sorted(set(mix) - {f.name for f in dataclasses.fields(Mix)})
  if unknown:
    raise DataError(
        f"unknown synthetic mix option(s) {unknown}; use any of "
        f"{[f.name for f in dataclasses.fields(Mix)]}"
    )
  mix = Mix(**mix)
  _check_sizes(image_size, num_train_groups=num_train_groups, num_test_groups=num_test_groups)
  params = dict(
      kind="colorswap_like",
      seed=seed,
      num_train_groups=num_train_groups,
      num_test_groups=num_test_groups,
      image_size=image_size,
      mix=dataclasses.asdict(mix),
  )
  arrays = _cached(
      params,
      cache_dir,
      lambda: _splits_to_arrays(
          _generate_colorswap_like(seed, num_train_groups, num_test_groups, image_size, mix)
      ),
  )
  return ColorSwapSplits(
      train=Pairs(arrays["train_images"], tuple(arrays["train_texts"].tolist())),
      test=Pairs(arrays["test_images"], tuple(arrays["test_texts"].tolist())),
  )


def _splits_to_arrays(splits):
  return dict(
      train_images=splits.train.images,
      train_texts=np.asarray(splits.train.texts),
      test_images=splits.test.images,
      test_texts=np.asarray(splits.test.texts),
  )


# ----------------------------------------------------------------------------------------------
# Pretraining corpus

PRETRAINING_KINDS = ("single", "one_color", "unbound", "same_shape", "postfix", "prefix_noisy")
SWAPPED_KINDS = ("same_shape", "postfix")


def _pretraining_pair(rng, image_size, kind):
  """[(image, caption)]: one pair, or for the kinds in SWAPPED_KINDS the pair and its color swap."""
  colors = sorted(COLORS)
  bg = _pick(rng, BACKGROUNDS)
  background = _background(rng, image_size, bg)
  if kind == "single":  # One object anywhere.
    c, s, z = _pick(rng, COLORS), _pick(rng, SHAPES), _pick(rng, SIZES)
    cx, cy, r = *rng.uniform(0.3, 0.7, size=2), rng.uniform(*SIZES[z])
    scene = dict(background=background, objects=[(s, _object_rgb(rng, c), cx, cy, r)])
    text = SINGLE_TEMPLATES[rng.integers(len(SINGLE_TEMPLATES))].format(c=c, s=s, z=z, bg=bg)
    return [(_render(scene, image_size), text)]
  layout = "vertical" if rng.random() < 0.3 else "horizontal"
  sizes = (_pick(rng, SIZES), _pick(rng, SIZES))
  za, zb = sizes
  if kind == "same_shape":  # Two colors bound to places, one shape: nothing to bind to shapes.
    sa = sb = _pick(rng, SHAPES)
    ca, cb = rng.choice(colors, size=2, replace=False).tolist()
    template = SAME_SHAPE_TEMPLATES[layout][rng.integers(len(SAME_SHAPE_TEMPLATES[layout]))]
    caption = lambda ca, cb: template.format(ca=ca, sa=sa, za=za, cb=cb, sb=sb, zb=zb, bg=bg)  # pylint: disable=unnecessary-lambda-assignment
  elif kind == "postfix":  # Two colors bound to shapes, in the other syntax, either object first.
    sa, sb = rng.choice(SHAPES, size=2, replace=False).tolist()
    ca, cb = rng.choice(colors, size=2, replace=False).tolist()
    template = POSTFIX_TEMPLATES[rng.integers(len(POSTFIX_TEMPLATES))]
    flip = rng.random() < 0.5

    def caption(ca, cb):
      first, second = ((sa, za, ca), (sb, zb, cb))[:: -1 if flip else 1]
      return template.format(
          sa=first[0], za=first[1], ca=first[2], sb=second[0], zb=second[1], cb=second[2], bg=bg
      )

  else:
    sa, sb = rng.choice(SHAPES, size=2, replace=False).tolist()
    if kind == "one_color":  # Two objects of one color: full templates, nothing to bind.
      ca = cb = colors[rng.integers(len(colors))]
      templates = TEMPLATES[layout]
      text = templates[rng.integers(len(templates))].format(
          ca=ca, sa=sa, za=za, cb=cb, sb=sb, zb=zb, bg=bg
      )
    elif kind == "prefix_noisy":  # Two colors under the group templates, assigned at random.
      ca, cb = rng.choice(colors, size=2, replace=False).tolist()
      templates = TEMPLATES[layout]
      named = (ca, cb) if rng.random() < 0.5 else (cb, ca)
      text = templates[rng.integers(len(templates))].format(
          ca=named[0], sa=sa, za=za, cb=named[1], sb=sb, zb=zb, bg=bg
      )
    else:  # Two colors, named apart from the shapes.
      ca, cb = rng.choice(colors, size=2, replace=False).tolist()
      c1, c2 = sorted((ca, cb))
      (s1, z1), (s2, z2) = sorted(((sa, za), (sb, zb)))
      text = UNBOUND_TEMPLATES[rng.integers(len(UNBOUND_TEMPLATES))].format(
          c1=c1, c2=c2, s1=s1, s2=s2, z1=z1, z2=z2, bg=bg
      )
    caption = lambda ca, cb: text  # pylint: disable=unnecessary-lambda-assignment
  (xa, ya, ra), (xb, yb, rb) = _two_object_geometry(rng, layout, sizes)
  rgb = (_object_rgb(rng, ca), _object_rgb(rng, cb))
  out = []
  for (c1, c2), (rgb1, rgb2) in (((ca, cb), rgb), ((cb, ca), rgb[::-1]))[
      : 2 if kind in SWAPPED_KINDS else 1
  ]:
    scene = dict(background=background, objects=[(sa, rgb1, xa, ya, ra), (sb, rgb2, xb, yb, rb)])
    out.append((_render(scene, image_size), caption(c1, c2)))
  return out


def pretraining_corpus(
    *,
    seed: int = 0,
    num_pairs: int = 20000,
    image_size: int = 32,
    kind_weights=(1.0, 1.0, 1.0, 0.0, 2.0, 2.0),
    cache_dir=None,
) -> Pairs:
  """Pairs that teach colors, shapes, sizes, backgrounds and the templates but not color-shape
  binding in the syntax of the group captions.

  kind_weights: relative shares of the units of PRETRAINING_KINDS: one object ("a small red circle
  on a navy background"); two objects of one color under the group templates; two objects of two
  colors with an unbound caption ("a big circle and a small square colored blue and red on ...");
  two objects of one shape and two colors under the positional templates (colors bound to places,
  not to shapes); two objects of two colors bound in the postfix syntax ("a big circle in red and a
  small square in blue on ..."), which no group caption uses; two objects of two colors under the
  group templates with the two colors assigned to the shapes at random (right half the time).
  The corpus is laid out in units of two consecutive pairs (2u, 2u + 1), num_pairs // 2 of them
  (num_pairs must be even): in a unit of SWAPPED_KINDS the second pair is the first with its two
  colors swapped, a hard negative when the unit is kept in one batch; otherwise two independent
  draws of the kind.
  """
  _check_sizes(image_size, num_pairs=num_pairs)
  if num_pairs % 2:
    raise DataError(f"pretraining num_pairs={num_pairs} must be even (units of two pairs)")
  weights = np.asarray(kind_weights, np.float64)
  if weights.shape != (len(PRETRAINING_KINDS),) or (weights < 0).any() or weights.sum() <= 0:
    raise DataError(
        f"pretraining kind_weights={kind_weights!r} must be {len(PRETRAINING_KINDS)}"
        f" non-negative numbers, not all 0, for {PRETRAINING_KINDS}"
    )
  params = dict(
      kind="pretraining",
      seed=seed,
      num_pairs=num_pairs,
      image_size=image_size,
      kind_weights=[float(w) for w in weights],
  )

  def build():
    rng = np.random.default_rng([seed, 3])
    kinds = rng.choice(len(PRETRAINING_KINDS), size=num_pairs // 2, p=weights / weights.sum())
    rendered = []
    for k in kinds:
      kind = PRETRAINING_KINDS[k]
      unit = _pretraining_pair(rng, image_size, kind)
      if kind not in SWAPPED_KINDS:
        unit += _pretraining_pair(rng, image_size, kind)
      rendered += unit
    return dict(
        images=np.stack([im for im, _ in rendered]), texts=np.asarray([t for _, t in rendered])
    )

  arrays = _cached(params, cache_dir, build)
  return Pairs(images=arrays["images"], texts=tuple(arrays["texts"].tolist()))


# ----------------------------------------------------------------------------------------------
# Validation and the disk cache


def _check_sizes(image_size, **counts):
  if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 1024:
    raise DataError(
        f"synthetic image_size={image_size!r} must be an int in [8, 1024]; shapes are"
        " unreadable below 8 pixels"
    )
  for name, value in counts.items():
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise DataError(f"synthetic {name}={value!r} must be a positive int")


def default_cache_dir() -> str:
  return os.environ.get("MMAL_JAX_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "mmal_jax"
  )


def _cached(params, cache_dir, build):
  """build() -> dict of arrays, stored under a hash of `params` and written atomically, by process 0
  only (jax.process_index() == 0): the others read the file when it is there, else build the same
  arrays in memory (the generator is deterministic in `params`), so no two processes write it."""
  params = dict(params, version=GENERATOR_VERSION)
  key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
  cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
  path = os.path.join(cache_dir, f"{params['kind']}-{key}.npz")
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  arrays = build()
  if jax.process_index() != 0:
    return arrays
  try:
    with files.atomic_write(path) as f:
      np.savez(f, **arrays)
  except OSError as e:  # Caching is only a speed-up: a read-only home must not stop a run.
    logging.warning(
        "Could not cache synthetic data in %s (%s); set $MMAL_JAX_CACHE to a writable"
        " directory to avoid regenerating it.",
        cache_dir,
        e,
    )
  return arrays
