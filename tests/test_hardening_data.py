"""Malformed real data: empty files and lists, empty captions, records of the wrong type, a
zero-byte image; each error names the file and the record. Through the CLI: one line, exit 2,
the work directory untouched."""

import json
import os
import subprocess
import sys

import pytest

from mmal_jax.data import coco
from mmal_jax.data import colorswap
from mmal_jax.data.pairs import DataError
import test_coco_reader as coco_files
import test_colorswap_reader as colorswap_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _colorswap_error(folder, *words):
  with pytest.raises(DataError) as info:
    colorswap.load_colorswap(folder, image_size=4)
  for w in words:
    assert w in str(info.value), str(info.value)


def test_colorswap_empty_and_bad_rows(tmp_path):
  colorswap_files._write_official(tmp_path)
  (tmp_path / "train.json").write_text("")
  _colorswap_error(tmp_path, str(tmp_path / "train.json"), "not valid JSON")
  (tmp_path / "train.json").write_text("[]")
  _colorswap_error(tmp_path, str(tmp_path / "train.json"), "empty list")
  groups = colorswap_files._groups("train")
  groups[2]["caption_2"] = "  "
  (tmp_path / "train.json").write_text(json.dumps(groups))
  _colorswap_error(tmp_path, str(tmp_path / "train.json"), "record 2", "'caption_2' is empty")
  colorswap_files._write_official(tmp_path)
  (tmp_path / "images" / "img_test_1_1.png").write_bytes(b"")
  _colorswap_error(tmp_path, "test.json", "record 1", "img_test_1_1.png", "unreadable image")


def _coco_error(root, edit, *words):
  coco_files._write_json(root)
  edit(root)
  with pytest.raises(DataError) as info:
    coco.load_coco_captions(root, split="val2017", image_size=4)
  for w in words:
    assert w in str(info.value), str(info.value)


def test_coco_empty_and_bad_rows(tmp_path):
  path = tmp_path / "annotations" / "captions_val2017.json"
  _coco_error(tmp_path, lambda _: path.write_text(""), str(path), "not valid JSON")
  _coco_error(
      tmp_path,
      lambda r: coco_files._edit_annotations(r, lambda d: d["annotations"][1].update(caption="")),
      str(path),
      "annotations[1]",
      "empty caption",
  )
  _coco_error(
      tmp_path,
      lambda r: coco_files._edit_annotations(
          r, lambda d: d["annotations"].__setitem__(3, "a caption")
      ),
      str(path),
      "annotations[3] is str",
  )
  jpg = tmp_path / "val2017" / f"{25:012d}.jpg"
  _coco_error(tmp_path, lambda _: jpg.write_bytes(b""), str(jpg), "image id=25", "unreadable")


def test_cli_corrupt_colorswap_is_one_line(tmp_path):
  data = tmp_path / "colorswap"
  data.mkdir()
  colorswap_files._write_official(data)
  groups = colorswap_files._groups("test")
  groups[1]["caption_1"] = ""
  (data / "test.json").write_text(json.dumps(groups))
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "mmal_jax.main",
          "--config=configs/siglip_colorswap.py",
          f"--workdir={workdir}",
          "--config.data.name=colorswap",
          f"--config.data.path={data}",
      ],
      cwd=ROOT,
      env=dict(os.environ, MMAL_JAX_CACHE=str(tmp_path / "cache")),
      capture_output=True,
      text=True,
      timeout=120,
  )
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: ") and str(data / "test.json") in lines[0]
  assert "record 1" in lines[0] and "'caption_1' is empty" in lines[0]
  assert not workdir.exists()
