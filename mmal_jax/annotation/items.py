"""The user's own unpaired files as annotation items: images from a folder or a list file, texts
from a .txt / .csv / .jsonl file, and optional known pairs.

Every item gets a stable id, its content hash ("img-" or "txt-" + the first 16 hex digits of the
SHA-256 of the image file's bytes or the text's UTF-8; ".2", ".3", ... on later copies of one
content), and keeps the user's own id (the image's
path as listed or relative to the folder; the text's `id` field, or its line number in a .txt).
Bad input raises DataError naming the file and line.
"""

import csv
import dataclasses
import hashlib
import json
import os

from mmal_jax.data.pairs import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class Item:
  """uid: the content hash id; user_id: the user's own id; source: the image's absolute path, or
  the text itself."""

  uid: str
  user_id: str
  source: str


def _hash(prefix: str, data: bytes) -> str:
  return f"{prefix}-{hashlib.sha256(data).hexdigest()[:16]}"


def _unique(items, what, path):
  """Items with distinct ids: identical contents (two copies of a photo, a repeated caption) stay
  distinct items, the later copies' content ids suffixed ".2", ".3", ... in file order; two items
  with one user id raise (the user's id must name one item)."""
  seen, copies, out = {}, {}, []
  for item in items:
    other = seen.setdefault(item.user_id, item)
    if other is not item:
      raise DataError(f"{path}: two {what} have the id {item.user_id!r}; give each its own id")
    copies[item.uid] = copies.get(item.uid, 0) + 1
    uid = item.uid if copies[item.uid] == 1 else f"{item.uid}.{copies[item.uid]}"
    out.append(dataclasses.replace(item, uid=uid))
  return out


def read_images(path: str) -> list[Item]:
  """Images of a folder (every image file below it, sorted; id: path relative to the folder) or of
  a list file (one path a line, relative to the list's folder; id: the path as written)."""
  if os.path.isdir(path):
    found = sorted(
        os.path.relpath(os.path.join(d, f), path)
        for d, _, names in os.walk(path)
        for f in names
        if f.lower().endswith(IMAGE_SUFFIXES)
    )
    named = [(rel, os.path.join(path, rel), f"{path}: {rel}") for rel in found]
  elif os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
    base = os.path.dirname(os.path.abspath(path))
    named = [
        (line.strip(), os.path.join(base, line.strip()), f"{path} line {i + 1}")
        for i, line in enumerate(lines)
        if line.strip()
    ]
  else:
    raise DataError(f"--images={path} is neither a folder nor a list file; pass one of them")
  if not named:
    raise DataError(f"--images={path} holds no image ({'/'.join(IMAGE_SUFFIXES)}); pass another")
  items = []
  for user_id, file, where in named:
    try:
      with open(file, "rb") as f:
        data = f.read()
    except OSError as e:
      raise DataError(f"{where}: cannot read image {file} ({e.strerror}); fix the path") from None
    items.append(Item(_hash("img", data), user_id, os.path.abspath(file)))
  return _unique(items, "images", path)


def _text_rows(path):
  """(user id, text, where) of each row of a .txt, .csv (columns id?, text) or .jsonl file."""
  ext = os.path.splitext(path)[1].lower()
  with open(path, encoding="utf-8", newline="") as f:
    if ext == ".txt":
      return [
          (str(i + 1), line, f"{path} line {i + 1}") for i, line in enumerate(f.read().splitlines())
      ]
    if ext == ".csv":
      reader = csv.DictReader(f)
      if "text" not in (reader.fieldnames or ()):
        raise DataError(f"{path}: a texts CSV needs a header with a 'text' column (and 'id')")
      return [
          (r.get("id") or str(i + 1), r["text"], f"{path} line {reader.line_num}")
          for i, r in enumerate(reader)
      ]
    if ext == ".jsonl":
      rows = []
      for i, line in enumerate(f):
        if not line.strip():
          continue
        where = f"{path} line {i + 1}"
        try:
          record = json.loads(line)
        except json.JSONDecodeError as e:
          raise DataError(f"{where}: not JSON ({e.msg}); write one object a line") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
          raise DataError(f'{where}: needs {{"id": ..., "text": "..."}}; got {line.strip()[:60]}')
        rows.append((str(record.get("id", i + 1)), record["text"], where))
      return rows
  raise DataError(f"--texts={path}: use a .txt (one text a line), .csv (id,text) or .jsonl file")


def read_texts(path: str) -> list[Item]:
  if not os.path.isfile(path):
    raise DataError(f"--texts={path} does not exist; pass a .txt, .csv or .jsonl file")
  items = []
  for user_id, text, where in _text_rows(path):
    if not text.strip():
      raise DataError(f"{where}: empty text; remove the row")
    items.append(Item(_hash("txt", text.encode("utf-8")), user_id, text))
  if not items:
    raise DataError(f"--texts={path} holds no text; pass another file")
  return _unique(items, "texts", path)


def read_pairs(path: str) -> list[tuple[str, str, str]]:
  """(image id, text id, where) of a CSV with columns image_id, text_id (ids as the user's own or
  the content hashes)."""
  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist; pass a CSV with columns image_id,text_id")
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    if not {"image_id", "text_id"} <= set(reader.fieldnames or ()):
      raise DataError(f"{path}: a pairs CSV needs a header with columns image_id,text_id")
    return [(r["image_id"], r["text_id"], f"{path} line {reader.line_num}") for r in reader]
