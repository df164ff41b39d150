"""The embedded default: a procedural ColorSwap-like dataset and a pretraining corpus.

Each ColorSwap-like group is two rendered scenes of the same two objects (a shape and a color each,
on a varied background) whose colors are swapped, with captions that bind colors to shapes
("a red circle to the left of a blue square" / "a blue circle to the left of a red square").
Groups are laid out as consecutive pairs (2g, 2g+1), as in `pairs.ColorSwapSplits`.

The training pool is long-tailed on purpose, as real collections are: its attribute combinations
(colors, shapes) follow a Zipf law over a seeded ranking, and a fraction of its groups are
near-duplicates of others (same attributes, template and background; jittered geometry). The test
groups draw combinations with their own exponent (uniform by default), so covering the attribute
space is what a good selection buys. Apart from near-duplicates, pool captions are distinct where
the templates allow it, as in real ColorSwap: two captions that are the same string embed the same
for any model, so every image whose two best-matching texts are such a repeat has a margin of
exactly 0, a tie that says nothing about the model.

The pretraining corpus teaches colors, shapes, the caption templates and two-object scenes, but
never which color goes with which shape when two objects differ in color: single objects, pairs
of one color, and pairs of two colors whose caption names colors and shapes in alphabetical order.

Everything is deterministic from the seed and cached on disk as .npz, keyed by a hash of every
generation parameter (`cache_dir`, else $MMAL_JAX_CACHE, else ~/.cache/mmal_jax).
"""
import dataclasses
import hashlib
import itertools
import json
import os

from absl import logging
import numpy as np
from PIL import Image, ImageDraw

from mmal_jax import files
from mmal_jax.data.pairs import ColorSwapSplits, DataError, Pairs

# Bump when rendering or sampling changes, so stale caches are not reused.
GENERATOR_VERSION = 2

COLORS = {
    "red": (220, 35, 35), "pink": (250, 135, 200), "yellow": (240, 225, 40),
    "green": (40, 185, 50), "blue": (45, 90, 240), "purple": (155, 50, 205),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")

# Object "a" is the left (horizontal) or top (vertical) one.
TEMPLATES = {
    "horizontal": (
        "a {ca} {sa} to the left of a {cb} {sb}",
        "a {cb} {sb} to the right of a {ca} {sa}",
        "a {ca} {sa} and a {cb} {sb}",
        "a {ca} {sa} next to a {cb} {sb}",
        "the {sa} is {ca} and the {sb} is {cb}",
    ),
    "vertical": (
        "a {ca} {sa} above a {cb} {sb}",
        "a {cb} {sb} below a {ca} {sa}",
        "a {ca} {sa} and a {cb} {sb}",
        "the {sa} is {ca} and the {sb} is {cb}",
    ),
}
SINGLE_TEMPLATES = ("a {c} {s}", "one {c} {s}", "the {s} is {c}")
# Colors and shapes each in alphabetical order: the caption says nothing about which goes where.
UNBOUND_TEMPLATES = ("a {s1} and a {s2} colored {c1} and {c2}", "{c1} and {c2} shapes a {s1} and a {s2}")

_SUPERSAMPLE = 4
_NOISE_STD = 4.0


def vocabulary() -> tuple[str, ...]:
  """Every word any caption of this module can contain, sorted: the embedded word vocabulary."""
  templates = [*itertools.chain(*TEMPLATES.values()), *SINGLE_TEMPLATES, *UNBOUND_TEMPLATES]
  words = set(COLORS) | set(SHAPES)
  for template in templates:
    words |= {w for w in template.split() if not w.startswith("{")}
  return tuple(sorted(words))


@dataclasses.dataclass(frozen=True)
class Mix:
  """How groups are drawn; the test split reads only `test_zipf_exponent` and `vertical_fraction`.

  zipf_exponent: P(k-th most common combination) ~ 1 / k**zipf_exponent; 0 = uniform.
  near_duplicate_fraction: share of pool groups that copy another pool group with jittered geometry.
  vertical_fraction: share of scenes laid out top/bottom instead of left/right.
  test_zipf_exponent: exponent for the test groups (same ranking as the pool).
  """
  zipf_exponent: float = 1.1
  near_duplicate_fraction: float = 0.15
  vertical_fraction: float = 0.3
  test_zipf_exponent: float = 0.0

  def __post_init__(self):
    for name in ("zipf_exponent", "test_zipf_exponent"):
      if not 0.0 <= getattr(self, name) <= 10.0:
        raise DataError(f"synthetic mix {name}={getattr(self, name)} is out of range; use 0 (uniform)"
                        " to 10 (almost all mass on one combination)")
    for name in ("near_duplicate_fraction", "vertical_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise DataError(f"synthetic mix {name}={getattr(self, name)} must be a fraction in [0, 1]")
    if self.near_duplicate_fraction == 1.0:
      raise DataError("synthetic mix near_duplicate_fraction=1 leaves no original groups to copy;"
                      " use a value below 1")


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
    return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
            (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
            (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w)]
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
    alpha = np.asarray(mask.resize((image_size, image_size), Image.BOX), np.float32)[:, :, None] / 255
    image = image * (1.0 - alpha) + np.asarray(rgb, np.float32) * alpha
  return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def _background(rng, image_size):
  """(tinted gray rgb, gradient angle, gradient slope, pixel noise f32[S, S, 3])."""
  base = rng.uniform(25, 110) + rng.uniform(-12, 12, size=3)
  return (base, rng.uniform(0, 2 * np.pi), rng.uniform(0, 25), _noise(rng, image_size))


def _noise(rng, image_size):
  return rng.normal(0.0, _NOISE_STD, (image_size, image_size, 3)).astype(np.float32)


def _object_rgb(rng, color):
  return tuple(int(v) for v in np.clip(np.asarray(COLORS[color]) + rng.integers(-10, 11, 3), 0, 255))


# ----------------------------------------------------------------------------------------------
# ColorSwap-like groups


def _combinations():
  """All (color_a, color_b, shape_a, shape_b) with two colors and two shapes, in a fixed order."""
  colors = sorted(COLORS)
  return [(ca, cb, sa, sb) for ca, cb in itertools.permutations(colors, 2)
          for sa, sb in itertools.permutations(SHAPES, 2)]


def _zipf_probs(n, exponent):
  p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
  return p / p.sum()


def _two_object_geometry(rng, layout):
  """[(cx, cy, r)] * 2 for objects a (left/top) and b, never overlapping."""
  along = (rng.uniform(0.2, 0.3), rng.uniform(0.7, 0.8))
  across = rng.uniform(0.3, 0.7, size=2)
  radius = rng.uniform(0.15, 0.2, size=2)
  if layout == "horizontal":
    return [(along[k], across[k], radius[k]) for k in range(2)]
  return [(across[k], along[k], radius[k]) for k in range(2)]


def _group_spec(rng, combo, mix, image_size):
  layout = "vertical" if rng.random() < mix.vertical_fraction else "horizontal"
  templates = TEMPLATES[layout]
  ca, cb = combo[:2]
  return dict(combo=combo, layout=layout, template=templates[rng.integers(len(templates))],
              geometry=_two_object_geometry(rng, layout), background=_background(rng, image_size),
              rgb=(_object_rgb(rng, ca), _object_rgb(rng, cb)))


def _captions(spec, template):
  """The group's two captions under `template`: as drawn, and with the colors swapped."""
  ca, cb, sa, sb = spec["combo"]
  return {template.format(ca=ca, sa=sa, cb=cb, sb=sb), template.format(ca=cb, sa=sa, cb=ca, sb=sb)}


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
  geometry = [(float(np.clip(cx + rng.uniform(-0.04, 0.04), 0.2, 0.8)),
               float(np.clip(cy + rng.uniform(-0.04, 0.04), 0.2, 0.8)),
               float(np.clip(r + rng.uniform(-0.015, 0.015), 0.15, 0.2)))
              for cx, cy, r in spec["geometry"]]
  return dict(spec, geometry=geometry,
              background=(*spec["background"][:3], _noise(rng, image_size)))


def _render_group(spec, image_size):
  """[(image, caption)] * 2: the scene as specified, then with the two colors swapped."""
  ca, cb, sa, sb = spec["combo"]
  out = []
  for (c1, c2), (rgb1, rgb2) in (((ca, cb), spec["rgb"]), ((cb, ca), spec["rgb"][::-1])):
    (xa, ya, ra), (xb, yb, rb) = spec["geometry"]
    scene = dict(background=spec["background"],
                 objects=[(sa, rgb1, xa, ya, ra), (sb, rgb2, xb, yb, rb)])
    out.append((_render(scene, image_size), spec["template"].format(ca=c1, sa=sa, cb=c2, sb=sb)))
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
  picks = train_rng.choice(len(combos), size=num_unique, p=_zipf_probs(len(combos), mix.zipf_exponent))
  specs = [_group_spec(train_rng, combos[ranking[k]], mix, image_size) for k in picks]
  # A stream of its own, so that the images and the test split stay exactly as drawn.
  specs = _distinct_captions(np.random.default_rng([seed, 4]), specs)
  specs += [_near_duplicate(train_rng, specs[k], image_size) for k in train_rng.integers(num_unique, size=num_dups)]
  specs = [specs[k] for k in train_rng.permutation(len(specs))]

  test_rng = np.random.default_rng([seed, 2])
  picks = test_rng.choice(len(combos), size=num_test_groups,
                          p=_zipf_probs(len(combos), mix.test_zipf_exponent))
  test_specs = [_group_spec(test_rng, combos[ranking[k]], mix, image_size) for k in picks]
  return ColorSwapSplits(train=_pairs_from_groups(specs, image_size),
                         test=_pairs_from_groups(test_specs, image_size))


def colorswap_like(*, seed: int = 0, num_train_groups: int = 700, num_test_groups: int = 300,
                   image_size: int = 32, cache_dir=None, **mix) -> ColorSwapSplits:
  """The embedded ColorSwap-like dataset: train 2*num_train_groups pairs, test 2*num_test_groups.

  Images are uint8[N, image_size, image_size, 3]; pairs (2g, 2g+1) form group g. `mix` holds the
  `Mix` fields (zipf_exponent, near_duplicate_fraction, vertical_fraction, test_zipf_exponent).
  The test split does not depend on the pool size (num_train_groups, zipf_exponent,
  near_duplicate_fraction). The default takes a few seconds to generate, then comes from the cache.
  """
  unknown = sorted(set(mix) - {f.name for f in dataclasses.fields(Mix)})
  if unknown:
    raise DataError(f"unknown synthetic mix option(s) {unknown}; use any of "
                    f"{[f.name for f in dataclasses.fields(Mix)]}")
  mix = Mix(**mix)
  _check_sizes(image_size, num_train_groups=num_train_groups, num_test_groups=num_test_groups)
  params = dict(kind="colorswap_like", seed=seed, num_train_groups=num_train_groups,
                num_test_groups=num_test_groups, image_size=image_size, mix=dataclasses.asdict(mix))
  arrays = _cached(params, cache_dir, lambda: _splits_to_arrays(_generate_colorswap_like(
      seed, num_train_groups, num_test_groups, image_size, mix)))
  return ColorSwapSplits(train=Pairs(arrays["train_images"], tuple(arrays["train_texts"].tolist())),
                         test=Pairs(arrays["test_images"], tuple(arrays["test_texts"].tolist())))


def _splits_to_arrays(splits):
  return dict(train_images=splits.train.images, train_texts=np.asarray(splits.train.texts),
              test_images=splits.test.images, test_texts=np.asarray(splits.test.texts))


# ----------------------------------------------------------------------------------------------
# Pretraining corpus


def _pretraining_pair(rng, image_size):
  colors, kind = sorted(COLORS), rng.integers(3)
  background = _background(rng, image_size)
  if kind == 0:  # One object anywhere, bigger than in the groups.
    c, s = colors[rng.integers(len(colors))], SHAPES[rng.integers(len(SHAPES))]
    cx, cy, r = *rng.uniform(0.3, 0.7, size=2), rng.uniform(0.15, 0.28)
    scene = dict(background=background, objects=[(s, _object_rgb(rng, c), cx, cy, r)])
    text = SINGLE_TEMPLATES[rng.integers(len(SINGLE_TEMPLATES))].format(c=c, s=s)
    return _render(scene, image_size), text
  layout = "vertical" if rng.random() < 0.3 else "horizontal"
  sa, sb = rng.choice(SHAPES, size=2, replace=False).tolist()
  if kind == 1:  # Two objects of one color: full templates, nothing to bind.
    ca = cb = colors[rng.integers(len(colors))]
    templates = TEMPLATES[layout]
    text = templates[rng.integers(len(templates))].format(ca=ca, sa=sa, cb=cb, sb=sb)
  else:  # Two colors, named apart from the shapes.
    ca, cb = rng.choice(colors, size=2, replace=False).tolist()
    c1, c2 = sorted((ca, cb))
    s1, s2 = sorted((sa, sb))
    text = UNBOUND_TEMPLATES[rng.integers(len(UNBOUND_TEMPLATES))].format(c1=c1, c2=c2, s1=s1, s2=s2)
  (xa, ya, ra), (xb, yb, rb) = _two_object_geometry(rng, layout)
  scene = dict(background=background, objects=[(sa, _object_rgb(rng, ca), xa, ya, ra),
                                               (sb, _object_rgb(rng, cb), xb, yb, rb)])
  return _render(scene, image_size), text


def pretraining_corpus(*, seed: int = 0, num_pairs: int = 20000, image_size: int = 32,
                       cache_dir=None) -> Pairs:
  """Pairs that teach colors, shapes and the templates but not color-shape binding.

  A third each: one object ("a red circle"); two objects of one color under the group templates;
  two objects of two colors with an unbound caption ("a circle and a square colored blue and red").
  """
  _check_sizes(image_size, num_pairs=num_pairs)
  params = dict(kind="pretraining", seed=seed, num_pairs=num_pairs, image_size=image_size)

  def build():
    rng = np.random.default_rng([seed, 3])
    rendered = [_pretraining_pair(rng, image_size) for _ in range(num_pairs)]
    return dict(images=np.stack([im for im, _ in rendered]),
                texts=np.asarray([t for _, t in rendered]))

  arrays = _cached(params, cache_dir, build)
  return Pairs(images=arrays["images"], texts=tuple(arrays["texts"].tolist()))


# ----------------------------------------------------------------------------------------------
# Validation and the disk cache


def _check_sizes(image_size, **counts):
  if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 1024:
    raise DataError(f"synthetic image_size={image_size!r} must be an int in [8, 1024]; shapes are"
                    " unreadable below 8 pixels")
  for name, value in counts.items():
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise DataError(f"synthetic {name}={value!r} must be a positive int")


def default_cache_dir() -> str:
  return os.environ.get("MMAL_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmal_jax")


def _cached(params, cache_dir, build):
  """build() -> dict of arrays, stored under a hash of `params` and written atomically."""
  params = dict(params, version=GENERATOR_VERSION)
  key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
  cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
  path = os.path.join(cache_dir, f"{params['kind']}-{key}.npz")
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  arrays = build()
  try:
    with files.atomic_write(path) as f:
      np.savez(f, **arrays)
  except OSError as e:  # Caching is only a speed-up: a read-only home must not stop a run.
    logging.warning("Could not cache synthetic data in %s (%s); set $MMAL_JAX_CACHE to a writable"
                    " directory to avoid regenerating it.", cache_dir, e)
  return arrays
