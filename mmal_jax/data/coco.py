"""MS-COCO captions as (image, first caption) pairs: official JSON + image folders, or tfds.

Two on-disk layouts, one lazy reader (`Source`) behind both:
  json: root/annotations/captions_<split>.json (the official release) + root/<split>/<file_name>.
  tfds: a prepared `coco_captions` data_dir in array_record format (Karpathy splits train / val /
        test / restval), read with `builder_from_directory(...).as_data_source(...)`. TensorFlow is
        NOT needed: the registered `coco_captions` builder class touches `tf.int64` in `_info`, so
        we read the dataset from its own features.json instead of through the builder class.

"First caption" means the caption with the smallest id of that image (annotation id in the JSON
release, sentence id in tfds): stable whatever order the file lists them in.

Images are decoded and resized by `mmal_jax.data.images`.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from mmal_jax.data.images import Record, decode_image, decode_images, why
from mmal_jax.data.pairs import DataError, Pairs


class Source:
  """N (image, caption) records read on demand (a `pairs.Source`): memory is bounded by the ids
  you ask for.

  `read(ids)` returns one `Record` per id. Nothing is decoded until `images(ids)` is called, so a
  118k-image split can be streamed in buffers (e.g. from `unaligned.stream_buffers`).
  """

  def __init__(
      self,
      num_items: int,
      read: Callable[[Sequence[int]], list[Record]],
      *,
      image_size: int,
      num_threads: int = 4,
  ):
    _check_args(image_size, None)
    self._num_items = num_items
    self._read = read
    self.image_size = image_size
    self._num_threads = num_threads

  def __len__(self) -> int:
    return self._num_items

  def _records(self, ids) -> list[Record]:
    ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
    bad = [i for i in ids if not 0 <= i < self._num_items]
    if bad:
      raise IndexError(f"ids {bad[:5]} out of range for a source of {self._num_items} items")
    return self._read(ids)

  def __getitem__(self, i: int) -> dict:
    """{"image": uint8[S, S, 3], "text": str}: one item, so that grain can use a Source directly
    (`grain.MapDataset.source(source)`) for shuffled, multi-worker input pipelines."""
    image, text, where = self._records([i])[0]
    return {"image": decode_image(image, self.image_size, where), "text": text}

  def texts(self, ids) -> list[str]:
    """Captions of items `ids` (int array-like), in that order."""
    return [text for _, text, _ in self._records(ids)]

  def images(self, ids) -> np.ndarray:
    """uint8[k, S, S, 3] images of items `ids` (int array-like), in that order."""
    return decode_images(self._records(ids), self.image_size, num_threads=self._num_threads)

  def pairs(self, *, batch_size: int = 512) -> Pairs:
    """All items as Pairs, read and decoded `batch_size` records at a time."""
    images = np.empty((len(self), self.image_size, self.image_size, 3), np.uint8)
    texts = []
    for start in range(0, len(self), batch_size):
      records = self._records(range(start, min(start + batch_size, len(self))))
      images[start : start + len(records)] = decode_images(
          records, self.image_size, num_threads=self._num_threads
      )
      texts.extend(text for _, text, _ in records)
    return Pairs(images=images, texts=tuple(texts))


def _check_args(image_size, max_items):
  if not (isinstance(image_size, (int, np.integer)) and image_size >= 1):
    raise DataError(f"image_size must be a positive int, got {image_size!r}")
  if max_items is not None and not (isinstance(max_items, (int, np.integer)) and max_items >= 1):
    raise DataError(f"max_items must be a positive int or None, got {max_items!r}")


def _load_json(path: pathlib.Path) -> dict:
  if not path.is_file():
    raise DataError(
        f"{path}: COCO captions file not found; expected the official"
        f" annotations/captions_<split>.json under the COCO root"
    )
  try:
    with path.open("rb") as f:
      data = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise DataError(
        f"{path}: not valid JSON ({why(e)}); re-extract" " annotations_trainval*.zip"
    ) from None
  if (
      not isinstance(data, dict)
      or not isinstance(data.get("images"), list)
      or not isinstance(data.get("annotations"), list)
  ):
    raise DataError(
        f"{path}: expected a COCO captions object with 'images' and 'annotations'"
        " lists; pass the official captions_<split>.json"
    )
  return data


def _field(record, key, types, path, what, index):
  if not isinstance(record, dict):
    raise DataError(
        f"{path}: {what}[{index}] is {type(record).__name__} {record!r:.60}, expected an object;"
        " fix the record (is this the official captions file?)"
    )
  if key not in record:
    raise DataError(
        f"{path}: {what}[{index}] has no {key!r} field; every COCO {what} record needs"
        f" it (is this the official captions file?)"
    )
  value = record[key]
  if not isinstance(value, types) or isinstance(value, bool):
    raise DataError(
        f"{path}: {what}[{index}] {key!r} is {type(value).__name__} {value!r:.60},"
        f" expected {' or '.join(t.__name__ for t in types)}; fix the record"
    )
  return value


def coco_json_source(
    root, *, split: str = "val2017", image_size: int, max_items: int | None = None
) -> Source:
  """Lazy Source over the official COCO captions release (see module doc for layout).

  Items are the split's captioned images sorted by image id (images without a caption are
  skipped), first `max_items` of them; each text is the image's smallest-id caption. The
  annotation file is fully validated and image files are checked to exist before returning.
  """
  _check_args(image_size, max_items)
  root = pathlib.Path(root)
  path = root / "annotations" / f"captions_{split}.json"
  data = _load_json(path)
  file_names = {}
  for i, rec in enumerate(data["images"]):
    image_id = _field(rec, "id", (int,), path, "images", i)
    file_names[image_id] = _field(rec, "file_name", (str,), path, "images", i)
  first = {}  # image id -> (annotation id, caption)
  for i, rec in enumerate(data["annotations"]):
    image_id = _field(rec, "image_id", (int,), path, "annotations", i)
    ann = (
        _field(rec, "id", (int,), path, "annotations", i),
        _field(rec, "caption", (str,), path, "annotations", i),
    )
    if not ann[1].strip():
      raise DataError(
          f"{path}: annotations[{i}] (id={ann[0]}) has an empty caption; fix or drop the record"
      )
    if image_id not in file_names:
      raise DataError(
          f"{path}: annotations[{i}] (id={ann[0]}) refers to image_id={image_id},"
          " which is not in 'images'; the file is inconsistent, re-extract it"
      )
    if image_id not in first or ann < first[image_id]:
      first[image_id] = ann
  ids = sorted(first)[: None if max_items is None else int(max_items)]
  if not ids:
    raise DataError(f"{path}: no captioned images; pass a captions file with annotations")
  image_dir = root / split
  present = set(os.listdir(image_dir)) if image_dir.is_dir() else set()
  missing = [
      i for i in ids if file_names[i] not in present and not (image_dir / file_names[i]).is_file()
  ]
  if missing:
    raise DataError(
        f"{image_dir / file_names[missing[0]]}: image file not found (image id="
        f"{missing[0]} in {path}; {len(missing)} of {len(ids)} missing); extract"
        f" {split}.zip into {image_dir}"
    )
  files = [image_dir / file_names[i] for i in ids]
  texts = [first[i][1] for i in ids]

  def read(idx):
    return [(files[k], texts[k], f"COCO {path} image id={ids[k]} ({files[k]})") for k in idx]

  return Source(len(ids), read, image_size=image_size)


def load_coco_captions(
    root, *, split: str = "val2017", image_size: int, max_items: int | None = None
) -> Pairs:
  """Pairs (uint8[N, S, S, 3] images, first captions) from the official COCO captions release."""
  return coco_json_source(root, split=split, image_size=image_size, max_items=max_items).pairs()


def _tfds_dataset_dir(data_dir: pathlib.Path) -> pathlib.Path:
  """The prepared coco_captions/<config>/<version> dir under a tfds data_dir (or that dir)."""
  if (data_dir / "dataset_info.json").is_file():
    return data_dir
  base = data_dir / "coco_captions" if (data_dir / "coco_captions").is_dir() else data_dir
  # data_dir may be the tfds root, its coco_captions/ or coco_captions/<config>/; newest version.
  candidates = sorted(
      [*base.glob("*/*/dataset_info.json"), *base.glob("*/dataset_info.json")],
      key=lambda p: tuple(int(x) for x in p.parent.name.split(".") if x.isdigit()),
  )
  if not candidates:
    raise DataError(
        f"{data_dir}: no prepared coco_captions dataset (expected"
        " coco_captions/2014/<version>/dataset_info.json); prepare it with"
        " `tfds build coco_captions --file_format=array_record --data_dir=...`"
    )
  return candidates[-1].parent


def coco_tfds_source(
    data_dir, *, split: str, image_size: int, max_items: int | None = None
) -> Source:
  """Lazy Source over a prepared tfds `coco_captions` (array_record), without TensorFlow.

  Items are the split's records in stored order, first `max_items` of them; each text is the
  record's smallest-id caption.
  """
  _check_args(image_size, max_items)
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(
        "reading tfds coco_captions needs tensorflow-datasets and array-record"
        " (no TensorFlow): pip install 'mmal_jax[data]'"
    ) from None
  dataset_dir = _tfds_dataset_dir(pathlib.Path(data_dir))
  try:
    builder = tfds.builder_from_directory(os.fspath(dataset_dir))
  except Exception as e:  # tfds raises many types for a broken dataset_info.json / features.json
    raise DataError(
        f"{dataset_dir}: cannot read the tfds dataset metadata ({why(e)});"
        " re-prepare coco_captions"
    ) from None
  info = builder.info
  if info.name != "coco_captions":
    raise DataError(
        f"{dataset_dir}: holds tfds dataset {info.name!r}, not 'coco_captions';"
        " point data_dir at the coco_captions data"
    )
  random_access = info.available_file_formats() & set(
      tfds.core.file_adapters.FileFormat.with_random_access()
  )
  if not random_access:
    raise DataError(
        f"{dataset_dir}: prepared as {getattr(info.file_format, 'value', None)}, which"
        " has no random access; re-prepare with `tfds build coco_captions"
        " --file_format=array_record`"
        " or convert with `tfds convert_format --out_file_format=array_record`"
    )
  if split not in info.splits:
    raise DataError(f"{dataset_dir}: no split {split!r}; available: {sorted(info.splits)}")
  # SkipDecoding keeps the JPEG bytes, so we decode (at reduced scale) only what is asked for.
  data = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  num_items = len(data) if max_items is None else min(len(data), int(max_items))

  def record(k, ex) -> Record:
    where = f"tfds {dataset_dir} split {split!r} record {k}"
    try:
      image, captions = ex["image"], ex["captions"]
      where += f" (image/id={int(ex['image/id'])})"
      ids, texts = list(captions["id"]), list(captions["text"])
    except (KeyError, TypeError) as e:
      raise DataError(
          f"{where}: malformed coco_captions record ({why(e)});" " re-prepare the dataset"
      ) from None
    if not texts or not isinstance(image, bytes):
      raise DataError(
          f"{where}: record has {'no captions' if not texts else 'no image bytes'};"
          " re-prepare the dataset or use a split whose records all have captions"
      )
    text = texts[int(np.argmin(ids))]
    return image, text.decode("utf-8") if isinstance(text, bytes) else str(text), where

  def read(idx):
    return [record(k, ex) for k, ex in zip(idx, data.__getitems__(idx))]

  return Source(num_items, read, image_size=image_size)


def load_coco_tfds(data_dir, *, split: str, image_size: int, max_items: int | None = None) -> Pairs:
  """Pairs (uint8[N, S, S, 3] images, first captions) from a prepared tfds coco_captions."""
  return coco_tfds_source(data_dir, split=split, image_size=image_size, max_items=max_items).pairs()


FORMATS = ("json", "tfds")


def load_coco(
    root,
    *,
    image_size: int,
    format: str = "json",  # pylint: disable=redefined-builtin
    pool_split: str | None = None,
    test_split: str | None = None,
    max_pool_items: int | None = None,
    max_test_items: int | None = None,
) -> tuple[Pairs, Pairs]:
  """(pool, test) Pairs of one COCO layout: `format` "json" (official release under `root`,
  splits default train2017 / val2017) or "tfds" (a coco_captions data_dir, splits train / val)."""
  if format not in FORMATS:
    raise DataError(
        f"config.data.format={format!r} is not a COCO format; use 'json' (official"
        " annotations + image folders) or 'tfds' (coco_captions data_dir)"
    )
  load = load_coco_captions if format == "json" else load_coco_tfds
  pool_default, test_default = ("train2017", "val2017") if format == "json" else ("train", "val")
  pool = load(
      root, split=pool_split or pool_default, image_size=image_size, max_items=max_pool_items
  )
  test = load(
      root, split=test_split or test_default, image_size=image_size, max_items=max_test_items
  )
  return pool, test
