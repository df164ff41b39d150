"""The annotation tool's whole cycle on a small embedded project (mmal_jax.annotate), answers made
from the ground truth: init -> next -> ingest -> train -> status / export, through the CSV route
and the Label Studio route; and the human annotator against the simulated oracle."""

import csv
import io
import json
import os
import tarfile
import xml.etree.ElementTree as ET

import numpy as np
import PIL.Image
import pytest

from annotate_helpers import write_unpaired
from mmal_jax import annotate
from mmal_jax.annotation import config as config_lib
from mmal_jax.annotation import learner as learner_lib
from mmal_jax.annotation.human import ProjectAnnotator
from mmal_jax.annotation.oracle import Oracle
from mmal_jax.annotation.project import Project
from mmal_jax.data import webdataset

NUM_GROUPS, NUM_KNOWN, NUM_TEST, PER_ROUND = 30, 3, 10, 6


def tiny_config():
  config = config_lib.get_config()
  config.per_round, config.coreset_size, config.top_k = PER_ROUND, 12, 4
  config.train.epochs, config.train.batch_size = 1, 8
  config.embed_batch_size = 32  # tiny projects: less padding in each embedding batch
  return config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  images, texts, truth = write_unpaired(
      str(root),
      num_groups=NUM_GROUPS,
      num_known=NUM_KNOWN,
      num_test=NUM_TEST,
      cache_dir=str(root / "cache"),
  )
  return dict(
      images=images,
      texts=texts,
      truth=truth,
      known=str(root / "known.csv"),
      test=str(root / "test.csv"),
  )


def new_project(data, directory):
  annotate.init(
      directory, tiny_config(), data["images"], data["texts"], data["known"], data["test"]
  )
  return directory


def truth_uid(project, truth, modality, item):
  """The content id of item `item`'s true partner (what a perfect annotator answers)."""
  user_id = project.items(modality, [item])[0][2]
  partner_user_id = truth[user_id]
  return next(r[1] for r in project.items(1 - modality) if r[2] == partner_user_id)


def check_pairs_true(project, truth):
  """Every confirmed pair is a true pair (checked on the user's ids, independently of the DB)."""
  images, texts = project.items(0), project.items(1)
  for i, t in zip(*project.train_pairs()):
    assert truth[images[i][2]] == texts[t][2]


def test_full_cycle_csv(data, tmp_path, capsys):
  directory = new_project(data, str(tmp_path / "p"))
  batch, folder, queries = annotate.next_batch(directory)
  assert batch == 1 and sorted(os.listdir(folder)) == [
      "labelstudio_config.xml",
      "labelstudio_tasks.json",
      "queries.csv",
      "queries.jsonl",
  ]
  # The user fills the partner_id column of the queries CSV with the true partners' own ids.
  with open(os.path.join(folder, "queries.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == PER_ROUND and all(r["partner_id"] == "" for r in rows)
  for r in rows:
    r["partner_id"] = data["truth"][r["user_id"]]
  answers = str(tmp_path / "answers.csv")
  with open(answers, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  assert annotate.ingest(directory, answers) == PER_ROUND
  assert annotate.ingest(directory, answers) == 0  # the same file again changes nothing
  project = Project(directory)
  assert project.counts()["pairs"] == NUM_KNOWN + PER_ROUND
  check_pairs_true(project, data["truth"])

  annotate.train(directory)
  rounds = project.rounds()
  assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["num_pairs"] == NUM_KNOWN + PER_ROUND
  assert os.path.isfile(project.path(rounds[1]["checkpoint"]))
  # The stored embeddings are the trained model's: recompute two texts' with the checkpoint.
  learner = learner_lib.Learner.of(project.config())
  z = learner_lib.load_embeddings(project.path(rounds[1]["embeddings"]))
  params = learner.params(project.path(rounds[1]["checkpoint"]))
  texts = [r[3] for r in project.items(1, [0, 5])]
  np.testing.assert_allclose(learner.embed(params, 1, texts), z[1][[0, 5]], atol=1e-5)
  # The test score in the DB is recall@1 computed here in float64 from those embeddings.
  ti, tt = project.known_pairs("test")
  sim = z[0][ti].astype(np.float64) @ z[1][tt].astype(np.float64).T
  assert json.loads(rounds[1]["scores"])["i2t"] == pytest.approx(
      np.mean(sim.argmax(1) == np.arange(NUM_TEST)), abs=1e-6
  )

  capsys.readouterr()
  annotate.status(directory)
  out = capsys.readouterr().out
  assert f"budget spent {PER_ROUND} answers" in out and f"{NUM_KNOWN + PER_ROUND} confirmed" in out
  assert os.path.isfile(project.path("curve.png"))

  jsonl, shards = annotate.export(directory, shard_size=4)
  with open(jsonl) as f:
    records = [json.loads(line) for line in f]
  assert len(records) == NUM_KNOWN + PER_ROUND and len(shards) == 3
  assert all(data["truth"][r["image_user_id"]] == r["text_user_id"] for r in records)
  members = {}
  for shard in shards:
    with tarfile.open(shard) as tar:
      for m in tar.getmembers():
        members[m.name] = tar.extractfile(m).read()
  for r in records:
    key = f"{r['image_id']}_{r['text_id']}".replace(".", "-")
    with open(os.path.join(data["images"], r["image_user_id"]), "rb") as f:
      assert members[key + ".png"] == f.read()
    assert members[key + ".txt"].decode() == r["text"]
  assert len(members) == 3 * len(records)
  # The project's own webdataset reader (DataComp's layout) reads the shards back, pair by pair.
  blocks = list(
      webdataset.WebDataset(f"{os.path.dirname(jsonl)}/pairs-{{000000..000002}}.tar", image_size=32)
  )
  assert [t for b in blocks for t in b.texts] == [r["text"] for r in records]
  assert [m["image_user_id"] for b in blocks for m in b.meta] == [
      r["image_user_id"] for r in records
  ]
  first = np.asarray(PIL.Image.open(os.path.join(data["images"], records[0]["image_user_id"])))
  np.testing.assert_array_equal(blocks[0].images[0], first)

  # A second round selects from what is left: no item is asked twice.
  _, _, again = annotate.next_batch(directory)
  first = set(zip(queries.modality[:PER_ROUND].tolist(), queries.item[:PER_ROUND].tolist()))
  assert not first & set(zip(again.modality.tolist(), again.item.tolist()))


def label_studio_export(tasks, project, truth):
  """What Label Studio exports after annotators pick, in each task, the true partner if the model
  suggested it, else "none of these"; the first task is skipped (a cancelled annotation)."""
  out = []
  for n, task in enumerate(tasks):
    qid = task["data"]["query_id"]
    q = project.query(qid)
    answer = truth_uid(project, truth, q.modality, q.item)
    aliases = [o["alias"] for o in task["data"]["options"]]
    choice = answer if answer in aliases else "none"
    result = [
        dict(from_name="partner", to_name="query", type="choices", value=dict(choices=[choice]))
    ]
    out.append(
        dict(
            id=100 + n,
            data=task["data"],
            predictions=task.get("predictions", []),
            annotations=[dict(id=n, result=result, was_cancelled=n == 0)],
        )
    )
  return out


def test_full_cycle_label_studio(data, tmp_path):
  directory = new_project(data, str(tmp_path / "p"))
  _, folder, _ = annotate.next_batch(directory)
  with open(os.path.join(folder, "labelstudio_tasks.json")) as f:
    tasks = json.load(f)
  config = ET.parse(os.path.join(folder, "labelstudio_config.xml")).getroot()
  choices, shown = config.find("Choices"), config.find("HyperText")
  assert choices.get("toName") == shown.get("name") and choices.get("value") == "$options"
  project = Project(directory)
  for task in tasks:
    assert shown.get("value")[1:] in task["data"] and choices.get("value")[1:] in task["data"]
    options = task["data"]["options"]
    assert options[-1]["alias"] == "none" and len(options) == 4 + 1
    (prediction,) = task["predictions"]
    (result,) = prediction["result"]
    assert (result["from_name"], result["to_name"]) == (choices.get("name"), shown.get("name"))
    assert result["value"]["choices"] == [options[0]["alias"]]  # the model's best suggestion
    # The suggestions are the model's top-4 of the other modality by cosine similarity, in
    # float64 over every item of that modality still unaligned.
    q = project.query(task["data"]["query_id"])
    z = learner_lib.load_embeddings(project.path(project.rounds()[0]["embeddings"]))
    left = project.pool(1 - q.modality)
    sim = z[1 - q.modality][left].astype(np.float64) @ z[q.modality][q.item].astype(np.float64)
    assert list(q.candidates) == left[np.argsort(-sim, kind="stable")[:4]].tolist()
  export = str(tmp_path / "export.json")
  with open(export, "w") as f:
    json.dump(label_studio_export(tasks, project, data["truth"]), f)
  assert annotate.ingest(directory, export) == PER_ROUND - 1
  log = project.log()
  recorded = dict(project.db.execute("SELECT qid, partner FROM answers").fetchall())
  for q in project.queries(state="answered"):
    answer = truth_uid(project, data["truth"], q.modality, q.item)
    expected = [r[0] for r in project.items(1 - q.modality) if r[1] == answer][0]
    assert recorded[q.qid] == (expected if expected in q.candidates else -1)
  assert project.counts()["pending"] == 1  # the skipped task
  annotate.train(directory)
  assert project.rounds()[-1]["num_pairs"] == NUM_KNOWN + int((log.partner >= 0).sum())
  check_pairs_true(project, data["truth"])


def test_human_annotator_matches_oracle(data, tmp_path):
  """The two `Annotator`s: for the same round's queries, the database annotator, once the true
  answers are ingested, returns exactly the simulated oracle's Answers."""
  directory = new_project(data, str(tmp_path / "p"))
  project = Project(directory)
  partner = []
  for m in (0, 1):
    rows = project.items(m)
    lookup = {r[2]: r[0] for r in project.items(1 - m)}
    partner.append(np.array([lookup[data["truth"][r[2]]] for r in rows]))
  known = project.known_pairs("train")
  oracle = Oracle(partner, log=dict(modality=np.zeros(NUM_KNOWN), item=known[0], partner=known[1]))
  z = learner_lib.load_embeddings(project.path(project.rounds()[0]["embeddings"]))
  queries = learner_lib.propose(
      project.config(), z, [project.pool(m) for m in (0, 1)], project.train_pairs(), key_round=1
  )
  human = ProjectAnnotator(project, round_=0, strategy="ours")
  assert len(human.answer(queries)) == 0  # asked; nobody has answered yet
  answers = str(tmp_path / "answers.jsonl")
  with open(answers, "w") as f:
    for q in project.queries():
      f.write(
          json.dumps(
              dict(query_id=q.qid, partner_id=truth_uid(project, data["truth"], q.modality, q.item))
          )
          + "\n"
      )
  annotate.ingest(directory, answers)
  expected, got = oracle.answer(queries), human.answer(queries)
  for k in ("modality", "item", "partner"):
    np.testing.assert_array_equal(getattr(got, k), getattr(expected, k))
  assert len(got) == PER_ROUND
