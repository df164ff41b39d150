"""Answer files for `ingest` (mmal_jax/annotation/answers.py), parsed without a project: each
file format against the rows written out by hand here, with the line each row is named by."""

import json

import pytest

from mmal_jax.annotation import answers
from mmal_jax.annotation import labelstudio
from mmal_jax.annotation.project import AnswerError


def _write(tmp_path, name, text, encoding="utf-8"):
  path = tmp_path / name
  path.write_bytes(text.encode(encoding))
  return str(path)


def test_csv_rows_are_the_answered_ones_named_by_their_line(tmp_path):
  # Exactly the two required columns; row 3 unanswered (empty), row 4 blank-padded.
  path = _write(tmp_path, "a.CSV", "query_id,partner_id\nq1,t7\nq2,\n q3 , none \n")
  assert answers.read(path) == [("q1", "t7", f"{path} line 2"), ("q3", "none", f"{path} line 4")]
  extra = _write(tmp_path, "b.csv", "kind,query_id,partner_id\nimage,q1,t7\n")
  assert answers.read(extra) == [("q1", "t7", f"{extra} line 2")]


@pytest.mark.parametrize(
    "text,match",
    [
        ("query_id\nq1\n", "line 1: an answers CSV needs a header"),
        ("query_id,partner_id\nq1,t1\nq2\n", "line 3: malformed row"),
        ("query_id,partner_id\nq1,t1,x\n", "line 2: malformed row"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, text, match):
  with pytest.raises(AnswerError, match=match):
    answers.read(_write(tmp_path, "a.csv", text))


def test_jsonl_rows_skip_blank_lines_and_count_them(tmp_path):
  lines = ['{"query_id": "q1", "partner_id": "t2"}', "", '{"query_id": "q2", "partner_id": null}']
  lines.append('{"query_id": "q3", "partner_id": 17}')
  path = _write(tmp_path, "a.jsonl", "\n".join(lines) + "\n")
  assert answers.read(path) == [
      ("q1", "t2", f"{path} line 1"),
      ("q2", "none", f"{path} line 3"),
      ("q3", "17", f"{path} line 4"),
  ]


@pytest.mark.parametrize(
    "line,match",
    [
        ("{not json", "line 2: malformed row, not JSON"),
        ('["q2", "t1"]', "line 2: malformed row; write"),
        ('{"query_id": 2, "partner_id": "t1"}', "line 2: malformed row; write"),
        ('{"query_id": "q2"}', "line 2: malformed row; write"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, match):
  path = _write(tmp_path, "a.jsonl", '{"query_id": "q1", "partner_id": "t1"}\n' + line + "\n")
  with pytest.raises(AnswerError, match=match):
    answers.read(path)


def test_label_studio_export_and_file_errors(tmp_path):
  task = dict(
      id=5,
      data=dict(query_id="q1"),
      annotations=[
          dict(result=[dict(from_name=labelstudio.FROM_NAME, value=dict(choices=["t3"]))])
      ],
  )
  path = _write(tmp_path, "export.json", json.dumps([task]))
  assert [row[:2] for row in answers.read(path)] == [("q1", "t3")]
  with pytest.raises(AnswerError, match="line 1: not JSON"):
    answers.read(_write(tmp_path, "bad.json", "[{"))
  with pytest.raises(AnswerError, match="does not exist"):
    answers.read(str(tmp_path / "missing.csv"))
  with pytest.raises(AnswerError, match="use a Label Studio export"):
    answers.read(_write(tmp_path, "a.txt", "query_id,partner_id\n"))
  with pytest.raises(AnswerError, match="not UTF-8"):
    answers.read(_write(tmp_path, "a.csv", "query_id,partner_id\nq1,caf\u00e9\n", "latin-1"))
