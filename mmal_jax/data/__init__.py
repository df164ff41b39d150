"""Datasets as (pool, test) `Pairs`, chosen by `config.data.name`.

Each reader's keyword arguments are its config fields, and its signature is the one home of their
defaults: `load_dataset` passes the fields of `config.data` that the reader takes and that are set
(not None); the others are ignored, so one flat `config.data` can carry every reader's fields.
  synthetic_colorswap: `synthetic.colorswap_like` (seed, num_train_groups, num_test_groups,
    cache_dir; `mix`, a dict of its generator options, e.g. zipf_exponent).
  colorswap: `colorswap.load_colorswap` (path: official JSON release dir or Hugging Face parquet).
  coco: `coco.load_coco` (root, format "json" | "tfds", pool_split, test_split, max_pool_items,
    max_test_items).
  webdataset: `webdataset.load_webdataset` (shards, test_shards: brace patterns of img2dataset tar
    shards); the pool comes back as a `WebDataset` stream (a `Shards`), read in order by the
    streaming loop, the test split in memory (`LabeledPairs` when it has zero-shot prompts).
The test split of a ColorSwap-style dataset comes back as `ColorSwapGroups` (scored by group), a
retrieval test split as plain `Pairs` (scored by recall@1). The real readers are imported only
when asked for, so that the embedded default works without their optional dependencies.
"""

import inspect

from mmal_jax.data.pairs import ColorSwapGroups, ColorSwapSplits, DataError, InMemory, LabeledPairs
from mmal_jax.data.pairs import Pairs
from mmal_jax.data.pairs import Shards, Source

__all__ = [
    "ColorSwapGroups",
    "ColorSwapSplits",
    "DataError",
    "InMemory",
    "LabeledPairs",
    "Pairs",
    "Shards",
    "Source",
    "load_dataset",
    "DATASET_NAMES",
]

DATASET_NAMES = ("synthetic_colorswap", "colorswap", "coco", "webdataset")
_REQUIRED = dict(
    colorswap="path", coco="root", webdataset="shards"
)  # a reader's positional argument: no default


def _fields(data_config):
  """The set (non-None) fields of a ConfigDict, dict or attribute object."""
  if hasattr(data_config, "items"):
    items = data_config.items()
  else:
    items = vars(data_config).items()
  return {k: v for k, v in items if v is not None}


def _reader(name):
  if name == "synthetic_colorswap":
    from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

    return synthetic.colorswap_like
  if name == "colorswap":
    from mmal_jax.data import colorswap  # pylint: disable=g-import-not-at-top

    return colorswap.load_colorswap
  if name == "webdataset":
    from mmal_jax.data import webdataset  # pylint: disable=g-import-not-at-top

    return webdataset.load_webdataset
  from mmal_jax.data import coco  # pylint: disable=g-import-not-at-top

  return coco.load_coco


def load_dataset(data_config, *, image_size: int) -> tuple[Pairs, Pairs]:
  """Returns (pool, test) with images uint8[N, image_size, image_size, 3]; the test split is
  `ColorSwapGroups` for ColorSwap-style data, plain `Pairs` for retrieval data."""
  fields = _fields(data_config)
  name = fields.pop("name", None)
  if name not in DATASET_NAMES:
    raise DataError(f"config.data.name={name!r} is not a known dataset; use one of {DATASET_NAMES}")
  required = _REQUIRED.get(name)
  if required and fields.get(required) in (None, ""):
    raise DataError(
        f"config.data.{required} is required for data.name={name!r}; set it on the"
        f" command line, e.g. --config.data.{required}=/path/to/data"
    )
  reader = _reader(name)
  takes = [
      p.name
      for p in inspect.signature(reader).parameters.values()
      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "image_size"
  ]
  kwargs = {k: v for k, v in fields.items() if k in takes}
  if name == "synthetic_colorswap":  # its generator options come as one dict, `mix`
    kwargs.update(fields.get("mix") or {})
  out = reader(image_size=image_size, **kwargs)
  if isinstance(out, ColorSwapSplits):
    return out.train, ColorSwapGroups.of(out.test)
  return out
