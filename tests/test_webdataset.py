"""The webdataset reader and writer on shards the tests write in img2dataset's layout, and zero-shot
accuracy on hand-built embeddings."""

import io
import json
import os
import tarfile

import numpy as np
import PIL.Image
import pytest

from mmal_jax import evaluation
from mmal_jax.data import DataError, LabeledPairs, Pairs, load_dataset
from mmal_jax.data import webdataset


def _flat_images(n, size=16):
  """Flat-colored images (JPEG keeps flat areas within a few levels), distinct per index."""
  colors = (np.arange(n)[:, None] * np.array([37, 91, 53]) + 20) % 256
  return np.broadcast_to(colors[:, None, None, :], (n, size, size, 3)).astype(np.uint8).copy()


def _member(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _jpeg(color):
  out = io.BytesIO()
  PIL.Image.new("RGB", (16, 16), color).save(out, format="JPEG")
  return out.getvalue()


def test_brace_expansion():
  assert webdataset.expand("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
  assert webdataset.expand("{a,b}/{8..10}.tar") == [
      "a/8.tar",
      "a/9.tar",
      "a/10.tar",
      "b/8.tar",
      "b/9.tar",
      "b/10.tar",
  ]
  assert webdataset.expand("plain.tar") == ["plain.tar"]
  with pytest.raises(DataError, match="runs backwards"):
    webdataset.expand("{3..1}.tar")


def test_written_shards_read_back(tmp_path):
  images = _flat_images(25)
  texts = tuple(f"caption number {i}" for i in range(25))
  uids = tuple(f"{i:032x}" for i in range(100, 125))
  block = webdataset.Block(images=images, texts=texts, uids=uids, meta=({},) * 25)
  pattern = webdataset.write_shards(str(tmp_path), [block], samples_per_shard=10)
  assert pattern == os.path.join(str(tmp_path), "{00000..00002}.tar")
  with tarfile.open(tmp_path / "00001.tar") as tar:  # img2dataset's member names
    assert tar.getnames()[:3] == ["000010000.jpg", "000010000.txt", "000010000.json"]
    assert json.load(tar.extractfile("000010000.json"))["uid"] == uids[10]
  data = webdataset.WebDataset(pattern, image_size=16)
  got = list(data)
  assert [len(b) for b in got] == [10, 10, 5]  # one block per shard (block_size 1024)
  assert sum((b.texts for b in got), ()) == texts
  assert sum((b.uids for b in got), ()) == uids
  back = np.concatenate([b.images for b in got]).astype(int)
  assert np.abs(back - images).max() <= 3  # JPEG quality 95 on flat colors
  assert not data.skipped and data.num_read == 25


def test_corrupt_and_incomplete_samples_are_counted_and_skipped(tmp_path):
  path = tmp_path / "00000.tar"
  with tarfile.open(path, "w") as tar:
    _member(tar, "0.jpg", _jpeg((200, 0, 0)))
    _member(tar, "0.txt", b"a red one")
    _member(tar, "0.json", b'{"uid": "u0"}')
    _member(tar, "1.jpg", b"\xff\xd8 not really a jpeg")
    _member(tar, "1.txt", b"corrupt image")
    _member(tar, "2.jpg", _jpeg((0, 200, 0)))  # no .txt
    _member(tar, "2.json", b'{"uid": "u2"}')
    _member(tar, "3.jpg", _jpeg((0, 0, 200)))
    _member(tar, "3.txt", b"   ")  # empty caption
    _member(tar, "4.txt", b"no image at all")
    _member(tar, "5.jpg", _jpeg((0, 0, 200)))
    _member(tar, "5.txt", b"a blue one")  # no .json: the key is the uid
  data = webdataset.WebDataset(str(path), image_size=8)
  (block,) = list(data)
  assert block.texts == ("a red one", "a blue one")
  assert block.uids == ("u0", "5")
  assert block.images.shape == (2, 8, 8, 3)
  assert dict(data.skipped) == {
      "unreadable image": 1,
      "no .txt": 1,
      "empty caption": 1,
      "no image": 1,
  }


def test_missing_empty_and_non_tar_shards_are_one_line_errors(tmp_path):
  good = tmp_path / "00000.tar"
  webdataset.write_shards(str(tmp_path), [Pairs(_flat_images(3), ("a", "b", "c"))])
  with pytest.raises(DataError, match=r"00001.tar does not exist \(pattern .*, 2 shards\)"):
    list(webdataset.WebDataset(str(tmp_path / "{00000..00001}.tar"), image_size=16))
  empty = tmp_path / "empty.tar"
  tarfile.open(empty, "w").close()
  with pytest.raises(DataError, match="empty.tar holds no usable sample;"):
    list(webdataset.WebDataset(str(empty), image_size=16))
  broken = tmp_path / "broken.tar"
  with tarfile.open(broken, "w") as tar:
    _member(tar, "0.jpg", b"garbage")
    _member(tar, "0.txt", b"x")
  with pytest.raises(DataError, match=r"holds no usable sample \(1 samples, all skipped"):
    list(webdataset.WebDataset(str(broken), image_size=16))
  text = tmp_path / "text.tar"
  text.write_text("not a tar file at all\n" * 100)
  with pytest.raises(DataError, match="is not a readable tar file"):
    list(webdataset.WebDataset(str(text), image_size=16))
  truncated = tmp_path / "truncated.tar"
  truncated.write_bytes(good.read_bytes()[:1200])
  with pytest.raises(DataError, match="truncated or damaged"):
    list(webdataset.WebDataset(str(truncated), image_size=16))
  for e in (str(tmp_path / "nothing.tar"),):
    with pytest.raises(DataError) as info:
      list(webdataset.WebDataset(e, image_size=16))
    assert "\n" not in str(info.value)


def test_buffers_hold_at_most_one_shard_block(tmp_path, monkeypatch):
  """Bounded memory by construction: at every buffer handed out, at most one shard is open and
  fewer than block_size samples have been read beyond the pairs handed out."""
  n, per_shard, block, size = 47, 7, 4, 6
  texts = tuple(f"t{i}" for i in range(n))
  pattern = webdataset.write_shards(
      str(tmp_path), [Pairs(_flat_images(n, 8), texts)], samples_per_shard=per_shard
  )
  counts = dict(open=0, max_open=0, read=0)
  original = webdataset._samples

  def counting(path):
    counts["open"] += 1
    counts["max_open"] = max(counts["max_open"], counts["open"])
    for sample in original(path):
      counts["read"] += 1
      yield sample
    counts["open"] -= 1

  monkeypatch.setattr(webdataset, "_samples", counting)
  data = webdataset.WebDataset(pattern, image_size=8, block_size=block)
  handed, got = 0, []
  for buffer in data.buffers(size):
    handed += len(buffer)
    got += buffer.texts
    assert counts["read"] - handed < block + size
    assert counts["read"] - handed <= block
  assert counts["max_open"] == 1
  assert tuple(got) == texts and handed == n
  assert [len(b) for b in data.buffers(size)][-2:] == [size, n % size]


def test_synthetic_stream_and_its_labeled_held_out_split(tmp_path):
  train, test = webdataset.write_synthetic(
      str(tmp_path / "s"),
      num_pairs=30,
      num_test_pairs=12,
      samples_per_shard=8,
      cache_dir=str(tmp_path / "cache"),
  )
  stream, held_out = load_dataset(
      dict(name="webdataset", shards=train, test_shards=test), image_size=32
  )
  assert isinstance(stream, webdataset.WebDataset) and len(stream.paths) == 4
  assert sum(len(b) for b in stream) == 30
  assert isinstance(held_out, LabeledPairs) and len(held_out) == 12
  assert list(held_out.labels) == ["color", "shape", "size", "background"]
  word = dict(size=1, color=2, shape=3, background=6)  # in "a {size} {color} {shape} on a {bg} ..."
  for attribute, present in held_out.labels.items():
    names = [prompts[0].split()[word[attribute]] for prompts in held_out.prompts[attribute]]
    for i, caption in enumerate(held_out.texts):  # labels = the class names the caption uses
      expected = {c for c, name in enumerate(names) if name in caption.split()}
      assert set(np.flatnonzero(present[i]).tolist()) == expected, (attribute, caption)
  assert held_out.labels["background"].sum(1).tolist() == [1] * 12
  with pytest.raises(DataError, match="test_shards is required"):
    load_dataset(dict(name="webdataset", shards=train), image_size=32)


def test_zero_shot_by_hand():
  # Two classes, prompt ensembles of two prompts each; three images.
  zprompts = [np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([[0.0, 1.0], [-0.6, 0.8]])]
  zclasses = evaluation.class_embeddings(zprompts)
  # Class 0's mean (0.8, 0.4) normalized; class 1's (-0.3, 0.9) normalized.
  np.testing.assert_allclose(zclasses[0], np.array([0.8, 0.4]) / np.hypot(0.8, 0.4), rtol=1e-6)
  zimg = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1]], np.float32)
  present = np.array([[True, False], [True, False], [False, True]])
  # Image 1 at (0, 1): <., c0> = 0.447, <., c1> = 0.949 -> class 1, wrong; the others right.
  assert evaluation.zero_shot(zimg, zclasses, present) == pytest.approx(2 / 3)
  test = LabeledPairs(
      images=np.zeros((3, 4, 4, 3), np.uint8),
      texts=("x", "y", "z"),
      labels={"a": present},
      prompts={"a": (("p", "q"), ("r", "s"))},
  )
  assert evaluation.prompt_texts(test) == ("p", "q", "r", "s")
  scores = evaluation.split_scores(test, zimg, zimg, np.concatenate(zprompts).astype(np.float32))
  assert scores["zeroshot_a"] == pytest.approx(2 / 3) and set(scores) == {
      "i2t",
      "t2i",
      "zeroshot_a",
  }
