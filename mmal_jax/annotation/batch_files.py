"""A batch of queries written for annotators, in batches/<n>/ of the project directory:

  queries.csv                one row per query: query_id, kind, item_id, user_id, item (path or
                             text), candidate_<j>_id / candidate_<j> for the top-k, and an empty
                             partner_id column: fill it in and `ingest` the file itself
  queries.jsonl              the same as JSON objects (candidates as a list)
  labelstudio_tasks.json     Label Studio import tasks with predictions (labelstudio.py)
  labelstudio_config.xml     the matching labeling config

All written atomically; the files are derived from the database and can be rewritten any time.
"""

import csv
import io
import json
import os

from mmal_jax import files
from mmal_jax.annotation import labelstudio
from mmal_jax.annotation.project import Project

KINDS = ("image", "text")


def _item(row):
  idx, uid, user_id, source = row
  return dict(uid=uid, user_id=user_id, source=source)


def write(project: Project, batch: int, *, url_prefix=labelstudio.DEFAULT_IMAGE_URL_PREFIX) -> str:
  """Writes batch `batch`'s pending queries' files; returns their folder."""
  queries = project.queries(batch=batch)
  items = [project.items(m) for m in (0, 1)]
  rnd = project.db.execute("SELECT round FROM batches WHERE batch = ?", (batch,)).fetchone()[0]
  folder = project.path("batches", str(batch))
  top_k = max([len(q.candidates) for q in queries] + [0])
  records, tasks = [], []
  for q in queries:
    item = _item(items[q.modality][q.item])
    candidates = [_item(items[1 - q.modality][c]) for c in q.candidates]
    records.append(
        dict(
            query_id=q.qid,
            kind=KINDS[q.modality],
            item_id=item["uid"],
            user_id=item["user_id"],
            item=item["source"],
            candidates=[
                dict(id=c["uid"], user_id=c["user_id"], item=c["source"]) for c in candidates
            ],
        )
    )
    tasks.append(
        labelstudio.task(
            dict(qid=q.qid, modality=q.modality),
            item,
            candidates,
            model_version=f"round-{rnd}",
            url_prefix=url_prefix,
        )
    )
  header = ["query_id", "kind", "item_id", "user_id", "item"]
  for j in range(1, top_k + 1):
    header += [f"candidate_{j}_id", f"candidate_{j}"]
  header.append("partner_id")
  text = io.StringIO()
  writer = csv.writer(text)
  writer.writerow(header)
  for r in records:
    row = [r["query_id"], r["kind"], r["item_id"], r["user_id"], r["item"]]
    for c in r["candidates"]:
      row += [c["id"], c["user_id"] if r["kind"] == "text" else c["item"]]
    row += [""] * (len(header) - 1 - len(row)) + [""]
    writer.writerow(row)
  files.write_text(os.path.join(folder, "queries.csv"), text.getvalue())
  files.write_text(
      os.path.join(folder, "queries.jsonl"), "".join(json.dumps(r) + "\n" for r in records)
  )
  files.write_text(os.path.join(folder, "labelstudio_tasks.json"), json.dumps(tasks, indent=1))
  files.write_text(os.path.join(folder, "labelstudio_config.xml"), labelstudio.CONFIG_XML)
  return folder
