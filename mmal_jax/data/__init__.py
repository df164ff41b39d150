"""Datasets as (pool, test) `Pairs`, chosen by `config.data.name`.

Fields read from data_config per name (all others are ignored):
  synthetic_colorswap: seed, num_train_groups, num_test_groups, cache_dir, mix (dict of
    `synthetic.colorswap_like` keyword options, e.g. zipf_exponent, near_duplicate_fraction).
  colorswap: path (official JSON release dir or Hugging Face parquet dir/file).
  coco: format ("json" | "tfds"), root (json: annotations/ + image folders; tfds: data_dir),
    pool_split (default "train2017" / "train"), test_split (default "val2017" / "val"),
    max_pool_items, max_test_items.
The real readers live in colorswap.py / coco.py and are imported only when asked for, so that the
embedded default works without their optional dependencies.
"""
from mmal_jax.data.pairs import ColorSwapSplits, DataError, Pairs, config_get

__all__ = ["ColorSwapSplits", "DataError", "Pairs", "load_dataset", "DATASET_NAMES"]

DATASET_NAMES = ("synthetic_colorswap", "colorswap", "coco")


def _require(cfg, key, name):
  value = config_get(cfg, key)
  if value in (None, ""):
    raise DataError(f"config.data.{key} is required for data.name={name!r}; set it on the command"
                    f" line, e.g. --config.data.{key}=/path/to/data")
  return value


def load_dataset(data_config, *, image_size: int) -> tuple[Pairs, Pairs]:
  """Returns (pool, test) Pairs with images uint8[N, image_size, image_size, 3]."""
  name = config_get(data_config, "name")
  if name not in DATASET_NAMES:
    raise DataError(f"config.data.name={name!r} is not a known dataset; use one of {DATASET_NAMES}")
  if name == "synthetic_colorswap":
    from mmal_jax.data import synthetic
    mix = dict(config_get(data_config, "mix", None) or {})
    splits = synthetic.colorswap_like(
        seed=config_get(data_config, "seed", 0),
        num_train_groups=config_get(data_config, "num_train_groups", 700),
        num_test_groups=config_get(data_config, "num_test_groups", 300),
        image_size=image_size, cache_dir=config_get(data_config, "cache_dir", None), **mix)
    return splits.train, splits.test
  if name == "colorswap":
    path = _require(data_config, "path", name)
    from mmal_jax.data import colorswap
    splits = colorswap.load_colorswap(path, image_size=image_size)
    return splits.train, splits.test
  fmt = config_get(data_config, "format", "json")
  if fmt not in ("json", "tfds"):
    raise DataError(f"config.data.format={fmt!r} is not a COCO format; use 'json' (official"
                    " annotations + image folders) or 'tfds' (coco_captions data_dir)")
  root = _require(data_config, "root", name)
  from mmal_jax.data import coco
  load = coco.load_coco_captions if fmt == "json" else coco.load_coco_tfds
  pool_default, test_default = ("train2017", "val2017") if fmt == "json" else ("train", "val")
  pool = load(root, split=config_get(data_config, "pool_split", pool_default), image_size=image_size,
              max_items=config_get(data_config, "max_pool_items"))
  test = load(root, split=config_get(data_config, "test_split", test_default), image_size=image_size,
              max_items=config_get(data_config, "max_test_items"))
  return pool, test
