"""Answer files for `ingest`: a Label Studio JSON export, or CSV / JSONL rows of (query_id,
partner_id). partner_id is the partner's content id or the user's own id, or "none" when the
query's item has no partner; an empty partner_id leaves the query unanswered (a CSV of queries can
be filled in part). Malformed rows raise AnswerError naming the row; nothing is parsed lazily, so
a file is checked whole before any of it is recorded.
"""

import csv
import json
import os

from mmal_jax.annotation import labelstudio
from mmal_jax.annotation.project import AnswerError


def _csv_rows(path):
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    if not {"query_id", "partner_id"} <= set(reader.fieldnames or ()):
      raise AnswerError(f"{path} line 1: an answers CSV needs a header with query_id,partner_id")
    rows = []
    for r in reader:
      where = f"{path} line {reader.line_num}"
      if None in r or r["query_id"] is None or r["partner_id"] is None:  # too many or few fields
        raise AnswerError(f"{where}: malformed row (expected {len(reader.fieldnames)} fields)")
      if r["partner_id"].strip():
        rows.append((r["query_id"].strip(), r["partner_id"].strip(), where))
    return rows


def _jsonl_rows(path):
  rows = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f):
      if not line.strip():
        continue
      where = f"{path} line {n + 1}"
      try:
        r = json.loads(line)
      except json.JSONDecodeError as e:
        raise AnswerError(f"{where}: malformed row, not JSON ({e.msg})") from None
      if not isinstance(r, dict) or not isinstance(r.get("query_id"), str) or "partner_id" not in r:
        raise AnswerError(
            f'{where}: malformed row; write {{"query_id": "...", "partner_id": "..."}}'
        )
      partner = "none" if r["partner_id"] is None else str(r["partner_id"])
      rows.append((r["query_id"], partner, where))
  return rows


def read(path):
  """(qid, partner id, where) of every answered row of an answers file; raises AnswerError."""
  if not os.path.isfile(path):
    raise AnswerError(f"{path} does not exist; pass a Label Studio JSON export, a .csv or a .jsonl")
  ext = os.path.splitext(path)[1].lower()
  try:
    if ext == ".csv":
      return _csv_rows(path)
    if ext == ".jsonl":
      return _jsonl_rows(path)
    if ext == ".json":
      with open(path, encoding="utf-8") as f:
        try:
          tasks = json.load(f)
        except json.JSONDecodeError as e:
          raise AnswerError(
              f"{path} line {e.lineno}: not JSON ({e.msg}); pass the export whole"
          ) from None
      return labelstudio.answers_of_export(tasks, path)
  except UnicodeDecodeError:
    raise AnswerError(f"{path}: not UTF-8 text; save it as UTF-8") from None
  raise AnswerError(f"{path}: use a Label Studio export (.json), a .csv or a .jsonl answers file")
