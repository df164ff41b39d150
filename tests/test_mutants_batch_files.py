"""The batch files written for annotators (mmal_jax/annotation/batch_files.py), cell by cell
against the project database: each query's row, its top-k candidates, the empty partner_id."""

import csv
import json
import os

import pytest

from mmal_jax import annotate
from mmal_jax.annotation.project import Project
from test_annotate import data  # pylint: disable=unused-import  (the module fixture)
from test_annotate import tiny_config


@pytest.mark.parametrize("query_modality", ["image", "text"])
def test_queries_csv_and_jsonl_hold_each_query_and_its_candidates(data, tmp_path, query_modality):  # pylint: disable=redefined-outer-name
  config = tiny_config()
  config.query_modality = query_modality  # both kinds of rows: text queries list image candidates
  annotate.init(
      str(tmp_path / "p"), config, data["images"], data["texts"], data["known"], data["test"]
  )
  directory = str(tmp_path / "p")
  batch, folder, _ = annotate.next_batch(directory)
  project = Project(directory)
  queries = project.queries(batch=batch)
  assert {q.modality for q in queries} == {("image", "text").index(query_modality)}
  items = [{row[0]: row for row in project.items(m)} for m in (0, 1)]
  k = max(len(q.candidates) for q in queries)
  assert len(queries) > 1 and k == 4  # the project's top_k
  header = ["query_id", "kind", "item_id", "user_id", "item"]
  for j in range(1, k + 1):
    header += [f"candidate_{j}_id", f"candidate_{j}"]
  header.append("partner_id")
  with open(os.path.join(folder, "queries.csv"), newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  with open(os.path.join(folder, "queries.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  assert rows[0] == header and len(rows) == len(records) + 1 == len(queries) + 1
  for q, row, record in zip(queries, rows[1:], records):
    _, uid, user_id, source = items[q.modality][q.item]
    kind = ("image", "text")[q.modality]
    want = [q.qid, kind, uid, user_id, source]
    candidates = []
    for c in q.candidates:
      _, c_uid, c_user_id, c_source = items[1 - q.modality][c]
      # An image query's candidates are captions, shown as text; a text query's are images,
      # shown by their file's own id.
      want += [c_uid, c_user_id if kind == "text" else c_source]
      candidates.append(dict(id=c_uid, user_id=c_user_id, item=c_source))
    want += [""] * (len(header) - len(want))  # fewer candidates: empty cells; partner_id empty
    assert row == want
    assert record == dict(
        query_id=q.qid, kind=kind, item_id=uid, user_id=user_id, item=source, candidates=candidates
    )
