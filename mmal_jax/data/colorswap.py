"""Real ColorSwap (Burapacheep et al. 2024) from a local copy, in either published layout.

Official release (github.com/Top34051/colorswap, the `data` folder): train.json and test.json,
each a list of groups
  {"id", "caption_1", "caption_2", "image_1", "image_2", "image_source", "caption_source"}
with image paths relative to the folder ("images/img_0_1.png"); the images may be extracted into
images/ or still inside images.zip next to the JSON files.

Hugging Face parquet (stanfordnlp/colorswap): parquet files for the train and test splits, named
train-*.parquet / test-*.parquet or stored under train/ and test/ folders, with the same columns and
image_1 / image_2 as the datasets `Image` struct {"bytes": encoded image, "path": file name}.

Group g becomes pairs 2g = (image_1, caption_1) and 2g+1 = (image_2, caption_2), groups in file
order (700 train groups -> the 1,400-pair pool, 300 test groups in the real data). Only id, the
captions and the images are read; image_source and caption_source are metadata. Images are decoded
and squashed to S x S exactly as in `images.decode_image`.
"""

from __future__ import annotations

import json
import pathlib
import zipfile
from collections.abc import Iterator

import numpy as np

from mmal_jax.data.images import Record, decode_images, why
from mmal_jax.data.pairs import ColorSwapSplits, DataError, Pairs

SPLITS = ("train", "test")
FIELDS = ("id", "caption_1", "caption_2", "image_1", "image_2")
_BATCH_GROUPS = 32  # groups decoded at a time: bounds memory for the ~1 MB/image PNG originals


def load_colorswap(path, *, image_size: int) -> ColorSwapSplits:
  """ColorSwapSplits (uint8[2G, S, S, 3] images) from an official release dir or HF parquet dir."""
  path = pathlib.Path(path)
  if not path.exists():
    raise DataError(
        f"{path}: ColorSwap path not found; pass the release folder holding"
        " train.json/test.json or the folder of the Hugging Face parquet files"
    )
  if not (isinstance(image_size, (int, np.integer)) and image_size >= 1):
    raise DataError(f"image_size must be a positive int, got {image_size!r}")
  release = next(
      (d for d in (path, path / "data") if all((d / f"{s}.json").is_file() for s in SPLITS)), None
  )
  if release is not None:
    readers = {s: _official_split(release, s) for s in SPLITS}  # validates both before decoding
  else:
    readers = {s: _parquet_split(path, s) for s in SPLITS}
  return ColorSwapSplits(**{s: _decode(*readers[s], image_size) for s in SPLITS})


def _decode(num_groups: int, batches: Iterator[list[Record]], image_size: int) -> Pairs:
  images = np.empty((2 * num_groups, image_size, image_size, 3), np.uint8)
  texts, start = [], 0
  for records in batches:
    images[start : start + len(records)] = decode_images(records, image_size)
    texts.extend(caption for _, caption, _ in records)
    start += len(records)
  return Pairs(images=images, texts=tuple(texts))


def _check_group(group, where: str, image_type: type, image_desc: str):
  if not isinstance(group, dict):
    raise DataError(
        f"{where}: a group must be an object with {FIELDS}, got"
        f" {type(group).__name__}; fix the record"
    )
  for key in FIELDS:
    if key not in group:
      raise DataError(f"{where}: missing field {key!r}; every ColorSwap group needs {FIELDS}")
  for key, want, desc in (
      ("caption_1", str, "a string"),
      ("caption_2", str, "a string"),
      ("image_1", image_type, image_desc),
      ("image_2", image_type, image_desc),
  ):
    if not isinstance(group[key], want):
      raise DataError(
          f"{where}: field {key!r} is {type(group[key]).__name__}"
          f" {group[key]!r:.60}, expected {desc}; fix the record"
      )
    if want is str and not group[key].strip():
      raise DataError(f"{where}: field {key!r} is empty, expected {desc}; fix the record")


def _official_split(release: pathlib.Path, split: str):
  """(num_groups, batches of Records) for release/<split>.json; all records validated now."""
  json_path = release / f"{split}.json"
  try:
    groups = json.loads(json_path.read_bytes())
  except (ValueError, UnicodeDecodeError) as e:
    raise DataError(
        f"{json_path}: not valid JSON ({why(e)}); re-extract the ColorSwap" " release"
    ) from None
  if not isinstance(groups, list) or not groups:
    got = "an empty list" if isinstance(groups, list) else type(groups).__name__
    raise DataError(
        f"{json_path}: expected a list of ColorSwap groups, got {got}; pass the official"
        f" {split}.json"
    )
  zip_path = release / "images.zip"
  members = None  # file name -> zip member, only opened when an image is not extracted
  refs = []  # (path on disk | zip member name, caption, where) per pair
  for g, group in enumerate(groups):
    where = f"ColorSwap {json_path} record {g}"
    _check_group(group, where, str, "an image path relative to the release folder")
    where = f"ColorSwap {json_path} record {g} (id={group['id']})"
    for j in (1, 2):
      rel = group[f"image_{j}"]
      if (release / rel).is_file():
        refs.append((release / rel, group[f"caption_{j}"], f"{where} image_{j} {release / rel}"))
        continue
      if members is None:
        members = _zip_members(zip_path) if zip_path.is_file() else {}
      member = members.get(rel) or members.get(pathlib.PurePosixPath(rel).name)
      if member is None:
        raise DataError(
            f"{where}: image_{j} file {release / rel} not found (nor in {zip_path});"
            " extract images.zip into the release folder"
        )
      refs.append((member, group[f"caption_{j}"], f"{where} image_{j} {zip_path}:{member}"))

  def batches():
    archive = zipfile.ZipFile(zip_path) if members else None

    def load(ref, where):
      if isinstance(ref, pathlib.Path):
        return ref
      try:
        return archive.read(ref)
      except (zipfile.BadZipFile, OSError) as e:
        raise DataError(
            f"{where}: unreadable zip member ({why(e)}); re-download images.zip" " or extract it"
        ) from None

    try:
      for start in range(0, len(refs), 2 * _BATCH_GROUPS):
        yield [
            (load(ref, where), caption, where)
            for ref, caption, where in refs[start : start + 2 * _BATCH_GROUPS]
        ]
    finally:
      if archive is not None:
        archive.close()

  return len(groups), batches()


def _zip_members(zip_path: pathlib.Path) -> dict[str, str]:
  """Member lookup by full name and by base name (the archive may or may not keep images/)."""
  try:
    with zipfile.ZipFile(zip_path) as archive:
      names = [n for n in archive.namelist() if not n.endswith("/")]
  except zipfile.BadZipFile as e:
    raise DataError(f"{zip_path}: not a readable zip ({why(e)}); re-download images.zip") from None
  return {**{pathlib.PurePosixPath(n).name: n for n in names}, **{n: n for n in names}}


def _split_files(path: pathlib.Path, split: str) -> list[pathlib.Path]:
  files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
  return [
      f
      for f in files
      if f.name.startswith(f"{split}-")
      or f.stem == split
      or split in f.relative_to(path).parent.parts
  ]


def _parquet_split(path: pathlib.Path, split: str):
  """(num_groups, batches of Records) streamed from the split's parquet files.

  The schema of every file is checked now; records are checked as they are streamed.
  """
  try:
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(
        "reading ColorSwap parquet files needs pyarrow: pip install" " 'mmal_jax[data]'"
    ) from None
  files = _split_files(path, split)
  if not files:
    raise DataError(
        f"{path}: no ColorSwap {split} data: expected {split}.json (official release)"
        f" or {split}-*.parquet / {split}/*.parquet (Hugging Face); pass the folder"
        " holding them"
    )
  parquet = []
  for f in files:
    try:
      pf = pq.ParquetFile(f)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for corrupt files
      raise DataError(f"{f}: not a readable parquet file ({why(e)});" " re-download it") from None
    missing = [c for c in FIELDS if c not in pf.schema_arrow.names]
    if missing:
      raise DataError(f"{f}: missing columns {missing}; a ColorSwap parquet file needs {FIELDS}")
    parquet.append(pf)

  def batches():
    for f, pf in zip(files, parquet):
      row = 0
      for batch in pf.iter_batches(batch_size=_BATCH_GROUPS, columns=list(FIELDS)):
        records = []
        for group in batch.to_pylist():
          where = f"ColorSwap {f} row {row} (id={group.get('id')})"
          _check_group(group, where, dict, 'an image struct {"bytes": ..., "path": ...}')
          for j in (1, 2):
            records.append(
                (
                    _struct_image(group[f"image_{j}"], f.parent, f"{where} image_{j}"),
                    group[f"caption_{j}"],
                    f"{where} image_{j}",
                )
            )
          row += 1
        yield records

  num_rows = sum(pf.metadata.num_rows for pf in parquet)
  if not num_rows:
    raise DataError(
        f"{path}: the ColorSwap {split} parquet files {[str(f) for f in files]} hold no rows;"
        " re-download them"
    )
  return num_rows, batches()


def _struct_image(struct: dict, folder: pathlib.Path, where: str) -> bytes | pathlib.Path:
  """Encoded bytes of a datasets Image struct, or its file when the bytes were not embedded."""
  if isinstance(struct.get("bytes"), bytes) and struct["bytes"]:
    return struct["bytes"]
  if isinstance(struct.get("path"), str) and struct["path"]:
    return folder / struct["path"]  # decode_image reports it if the file is missing
  raise DataError(
      f"{where}: image struct has neither bytes nor path; re-export the parquet with"
      " embedded images (datasets `embed_table_storage`)"
  )
