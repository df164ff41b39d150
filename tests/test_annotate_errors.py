"""Bad answer files: one line naming the row, exit code 2 from the CLI, and the database unchanged
(nothing half-ingested)."""

import csv
import json
import gc
import os
import shutil
import subprocess
import sys

import pytest

from annotate_helpers import write_unpaired
from mmal_jax import annotate
from mmal_jax.annotation.project import AnswerError, Project, ProjectError
from mmal_jax.data.pairs import DataError
from run_helpers import one_error_line
from test_annotate import tiny_config, truth_uid


@pytest.fixture(scope="module")
def asked(tmp_path_factory):
  """A project with one batch of queries pending, and the true answer (a content id) of each."""
  root = tmp_path_factory.mktemp("asked")
  images, texts, truth = write_unpaired(str(root), num_groups=20, cache_dir=str(root / "cache"))
  directory = str(root / "p")
  annotate.init(directory, tiny_config(), images, texts)
  annotate.next_batch(directory)
  project = Project(directory)
  answers = {q.qid: truth_uid(project, truth, q.modality, q.item) for q in project.queries()}
  project.close()
  # A connection left to the garbage collector closes (and deletes the -wal file) whenever the
  # collector runs: mid-copytree below, that was a "No such file" error (seen once). Collect now.
  gc.collect()
  return directory, answers


@pytest.fixture
def project(asked, tmp_path):
  directory = str(tmp_path / "p")
  shutil.copytree(asked[0], directory)
  return directory, asked[1]


def dump(directory):
  project = Project(directory)
  try:
    return list(project.db.iterdump())
  finally:
    project.close()


def write_csv(path, rows, header=("query_id", "partner_id")):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def rejected(directory, path, *names):
  """Ingesting `path` raises one line naming `names` (the row), and changes nothing."""
  before = dump(directory)
  with pytest.raises(AnswerError) as e:
    annotate.ingest(directory, path)
  message = str(e.value)
  assert "\n" not in message and all(n in message for n in names), message
  assert dump(directory) == before
  return message


def test_unknown_ids(project, tmp_path):
  directory, answers = project
  (q1, a1), (q2, a2) = list(answers.items())[:2]
  path = write_csv(tmp_path / "a.csv", [(q1, a1), ("b9-q1", a2)])
  assert "unknown query id 'b9-q1'" in rejected(directory, path, "a.csv line 3")
  path = write_csv(tmp_path / "b.csv", [(q1, a1), (q2, "img-0000000000000000")])
  assert "unknown" in rejected(directory, path, "b.csv line 3", "img-0000000000000000")


def test_item_paired_twice(project, tmp_path):
  directory, answers = project
  (q1, a1), (q2, _) = list(answers.items())[:2]
  path = write_csv(tmp_path / "a.csv", [(q1, a1), (q2, a1)])  # two queries, one partner
  assert "already paired" in rejected(directory, path, "a.csv line 3", a1)


def test_conflicting_answers(project, tmp_path):
  directory, answers = project
  (q1, a1), (_, a2) = list(answers.items())[:2]
  path = write_csv(tmp_path / "a.csv", [(q1, a1), (q1, "none")])  # within one file
  assert "a.csv line 2" in rejected(directory, path, "a.csv line 3", q1)
  # Across files: the first answer is recorded; a second file contradicting it is refused whole.
  annotate.ingest(directory, write_csv(tmp_path / "b.csv", [(q1, a1)]))
  q3, a3 = list(answers.items())[2]
  path = write_csv(tmp_path / "c.csv", [(q3, a3), (q1, a2)])
  rejected(directory, path, "c.csv line 3", q1)

  # Label Studio: two annotators of one task disagree.
  def result(choice):
    return [
        dict(from_name="partner", to_name="query", type="choices", value=dict(choices=[choice]))
    ]

  tasks = [
      dict(
          id=7,
          data=dict(query_id=q3),
          annotations=[dict(result=result(a3)), dict(result=result("none"))],
      )
  ]
  path = tmp_path / "export.json"
  path.write_text(json.dumps(tasks))
  assert "disagree" in rejected(directory, str(path), "export.json task 1 (id 7)")


def test_malformed_rows(project, tmp_path):
  directory, answers = project
  (q1, a1), (q2, a2) = list(answers.items())[:2]
  path = tmp_path / "a.csv"
  path.write_text(f"query_id,partner_id\n{q1},{a1}\n{q2}\n")
  assert "malformed row" in rejected(directory, str(path), "a.csv line 3")
  path = tmp_path / "a.jsonl"
  path.write_text(json.dumps(dict(query_id=q1, partner_id=a1)) + "\n{not json\n")
  assert "malformed row" in rejected(directory, str(path), "a.jsonl line 2")
  path = tmp_path / "export.json"
  path.write_text(
      json.dumps([dict(id=1, data=dict(query_id=q1), annotations=[]), dict(id=2, data={})])
  )
  rejected(directory, str(path), "export.json task 2 (id 2)", "query_id")
  path = write_csv(tmp_path / "b.csv", [(q1, a1)], header=("query", "partner"))
  rejected(directory, path, "b.csv line 1", "query_id,partner_id")


def test_failed_init_leaves_no_project(tmp_path):
  """init builds its database in a temporary file: a failure before the commit (here an
  exception, as a kill) leaves no project, and init then succeeds."""
  directory = str(tmp_path / "p")

  def fail(project):
    project.set_meta(config={})
    raise OSError("disk full")

  with pytest.raises(OSError):
    Project.create(directory, fail)
  assert not os.path.exists(os.path.join(directory, "project.sqlite"))
  with pytest.raises(ProjectError):
    Project(directory)
  Project.create(directory, lambda p: p.set_meta(config=dict(seed=3))).close()
  assert Project(directory).meta("config") == dict(seed=3)


def test_cli_error_is_one_line_exit_2(project, tmp_path):
  directory, answers = project
  (q1, a1), (q2, _) = list(answers.items())[:2]
  path = write_csv(tmp_path / "a.csv", [(q1, a1), (q2, a1)])
  before = dump(directory)
  proc = subprocess.run(
      [sys.executable, "-m", "mmal_jax.annotate", "ingest", f"--project={directory}", path],
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )
  line = one_error_line(proc)
  assert "a.csv line 3" in line and "already paired" in line
  assert dump(directory) == before
  proc = subprocess.run(
      [sys.executable, "-m", "mmal_jax.annotate", "status", f"--project={tmp_path / 'none'}"],
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )
  assert "holds no project" in one_error_line(proc)


def test_bad_init_inputs(tmp_path):
  """Bad files at init: one line naming the file and row; no project is created."""
  images = tmp_path / "images"
  images.mkdir()
  for k in range(3):
    (images / f"{k}.png").write_bytes(b"fake png %d" % k)  # read as bytes only: never decoded here
  texts = tmp_path / "texts.jsonl"
  texts.write_text('{"id": "a", "text": "a red circle"}\n{"id": "b", "text": "a blue square"}\n')
  directory = str(tmp_path / "p")

  def init_error(texts=str(texts), pairs=None):
    with pytest.raises(DataError) as e:
      annotate.init(directory, tiny_config(), str(images), texts, pairs)
    assert "\n" not in str(e.value) and not os.path.exists(directory)
    return str(e.value)

  pairs = write_csv(
      tmp_path / "pairs.csv", [("0.png", "a"), ("1.png", "c")], ("image_id", "text_id")
  )
  assert "pairs.csv line 3: unknown text id 'c'" in init_error(pairs=pairs)
  pairs = write_csv(
      tmp_path / "twice.csv", [("0.png", "a"), ("0.png", "b")], ("image_id", "text_id")
  )
  assert "twice.csv line 3" in init_error(pairs=pairs)
  bad = tmp_path / "texts2.jsonl"
  bad.write_text('{"id": "a", "text": "a red circle"}\n{"id": "b"}\n')
  assert "texts2.jsonl line 2" in init_error(texts=str(bad))
  same = tmp_path / "texts3.jsonl"
  same.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
  assert "have the id 'a'" in init_error(texts=str(same))
  assert "use a .txt" in init_error(texts=str(images / "0.png"))
