"""The aligned pairs of a project, out: JSONL, and webdataset tar shards.

pairs.jsonl: one object per confirmed pair (known train pairs, then answers in order) with both
items' content ids, the user's ids, the image path, the text, and where the pair came from.
Webdataset shards (pairs-000000.tar, ...): per pair the members <key>.<image suffix> (the image
file's own bytes), <key>.txt and <key>.json (the JSONL record), key = "<image id>_<text id>" in
content ids (dots as "-"); the layout webdataset readers expect (the files of one sample share
their key and follow each other).
Every file is written atomically.
"""

import io
import json
import os
import tarfile

from mmal_jax import files
from mmal_jax.annotation.project import Project
from mmal_jax.annotation.unaligned import IMAGE, TEXT


def records(project: Project) -> list[dict]:
  images, texts = project.items(IMAGE), project.items(TEXT)
  origins = ["known pair"] * len(project.known_pairs("train")[0])
  origins += [
      f"query {qid} ({origin})"
      for qid, origin in project.db.execute(
          "SELECT qid, origin FROM answers WHERE partner >= 0 ORDER BY seq"
      )
  ]
  out = []
  for i, t, origin in zip(*project.train_pairs(), origins):
    _, iuid, iuser, path = images[i]
    _, tuid, tuser, text = texts[t]
    out.append(
        dict(
            image_id=iuid,
            text_id=tuid,
            image_user_id=iuser,
            text_user_id=tuser,
            image=path,
            text=text,
            origin=origin,
        )
    )
  return out


def _member(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size, info.mode, info.mtime = len(data), 0o644, 0
  tar.addfile(info, io.BytesIO(data))


def write(project: Project, out_dir: str, *, shard_size: int = 1000) -> tuple[str, list[str]]:
  """Writes pairs.jsonl and the shards into out_dir; returns (jsonl path, shard paths)."""
  recs = records(project)
  jsonl = os.path.join(out_dir, "pairs.jsonl")
  files.write_text(jsonl, "".join(json.dumps(r) + "\n" for r in recs))
  shards = []
  for s in range(0, max(len(recs), 1), shard_size):
    path = os.path.join(out_dir, f"pairs-{s // shard_size:06d}.tar")
    with files.atomic_write(path) as f, tarfile.open(fileobj=f, mode="w") as tar:
      for r in recs[s : s + shard_size]:
        # webdataset splits a member's name at its first dot: the key must hold none.
        key = f"{r['image_id']}_{r['text_id']}".replace(".", "-")
        with open(r["image"], "rb") as image:
          _member(tar, f"{key}{os.path.splitext(r['image'])[1].lower()}", image.read())
        _member(tar, f"{key}.txt", r["text"].encode("utf-8"))
        _member(tar, f"{key}.json", json.dumps(r).encode("utf-8"))
    shards.append(path)
  return jsonl, shards
