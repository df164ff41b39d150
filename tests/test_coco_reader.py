"""COCO captions readers on tiny fixtures: the official JSON release and a prepared tfds dataset.

The tfds fixture is written by tfds itself in the real array_record layout (dataset_info.json,
features.json, coco_captions-<split>.array_record-* shards of tfds-serialized examples), using the
real `coco_captions` FeaturesDict, and without TensorFlow.
"""

import io
import json
import types

import numpy as np
import PIL.Image
import pytest

from mmal_jax.data import coco
from mmal_jax.data.pairs import DataError

S = 4
TOL = 4  # JPEG round trip of a solid color


def _color(image_id):
  return (20 + (37 * image_id) % 200, 20 + (91 * image_id) % 200, (53 * image_id) % 256)


def _jpeg(color=None, size=(9, 7), array=None):
  img = PIL.Image.fromarray(array) if array is not None else PIL.Image.new("RGB", size, color)
  buf = io.BytesIO()
  img.save(buf, "JPEG", quality=95)
  return buf.getvalue()


# image id -> [(annotation id, caption)]; listed out of order on purpose. Image 9 has no caption.
CAPTIONS = {
    42: [(907, "later caption of 42"), (311, "a dog on a red sofa"), (512, "another one")],
    7: [(44, "a cat under a green tree")],
    13: [(1200, "two birds"), (1100, "two blue birds on a wire")],
    25: [(3, "a man with an umbrella")],
}
NO_CAPTION = 9


def _expected(max_items=None):
  """Independent reference: captioned image ids sorted, each with its smallest-id caption."""
  ids = sorted(CAPTIONS)[:max_items]
  return ids, tuple(min(CAPTIONS[i])[1] for i in ids)


def _write_json(root, split="val2017"):
  (root / "annotations").mkdir(parents=True, exist_ok=True)
  (root / split).mkdir(exist_ok=True)
  images, annotations = [], []
  for image_id in [42, NO_CAPTION, 7, 25, 13]:
    name = f"{image_id:012d}.jpg"
    images.append(
        {
            "license": 1,
            "file_name": name,
            "coco_url": "",
            "height": 7,
            "width": 9,
            "date_captured": "",
            "flickr_url": "",
            "id": image_id,
        }
    )
    (root / split / name).write_bytes(_jpeg(_color(image_id)))
  for image_id, caps in CAPTIONS.items():
    annotations += [{"image_id": image_id, "id": ann_id, "caption": text} for ann_id, text in caps]
  annotations.reverse()
  (root / "annotations" / f"captions_{split}.json").write_text(
      json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations})
  )


def _check_images(images, ids):
  assert images.dtype == np.uint8 and images.shape == (len(ids), S, S, 3)
  want = np.array([_color(i) for i in ids], np.int64)[:, None, None, :]
  assert np.abs(images.astype(np.int64) - want).max() <= TOL


def test_json_first_caption_per_image(tmp_path):
  _write_json(tmp_path)
  ids, texts = _expected()
  pairs = coco.load_coco_captions(tmp_path, split="val2017", image_size=S)
  assert pairs.texts == texts
  _check_images(pairs.images, ids)
  ids, texts = _expected(2)
  pairs = coco.load_coco_captions(tmp_path, split="val2017", image_size=S, max_items=2)
  assert pairs.texts == texts
  _check_images(pairs.images, ids)


def test_json_source_random_access(tmp_path):
  _write_json(tmp_path)
  source = coco.coco_json_source(tmp_path, split="val2017", image_size=S)
  ids, texts = _expected()
  assert len(source) == len(ids)
  order = [3, 0, 3, 1]
  assert source.texts(np.array(order)) == [texts[k] for k in order]
  _check_images(source.images(order), [ids[k] for k in order])
  assert source.images([]).shape == (0, S, S, 3)
  with pytest.raises(IndexError):
    source.images([len(ids)])
  # A Source is a random-access data source for grain pipelines.
  grain = pytest.importorskip("grain")
  batches = list(grain.MapDataset.source(source).batch(3))
  assert [len(b["text"]) for b in batches] == [3, 1]
  assert tuple(t for b in batches for t in b["text"]) == texts
  np.testing.assert_array_equal(
      np.concatenate([b["image"] for b in batches]), source.images(range(len(ids)))
  )


def test_squash_resize_keeps_whole_image(tmp_path):
  """A wide image is squashed (plain resize, like big_vision), not center-cropped."""
  _write_json(tmp_path)
  stripes = np.zeros((24, 96, 3), np.uint8)
  for c in range(3):
    stripes[:, 32 * c : 32 * (c + 1), c] = 255
  (tmp_path / "val2017" / f"{7:012d}.jpg").write_bytes(_jpeg(array=stripes))
  img = coco.load_coco_captions(tmp_path, image_size=3, max_items=1).images[0]
  np.testing.assert_array_equal(img.argmax(-1), np.tile(np.arange(3), (3, 1)))


def _json_error(root, *fragments, **kwargs):
  with pytest.raises(DataError) as e:
    coco.load_coco_captions(root, image_size=S, **kwargs)
  message = str(e.value)
  assert "\n" not in message
  for fragment in fragments:
    assert str(fragment) in message, message


def _edit_annotations(root, edit):
  path = root / "annotations" / "captions_val2017.json"
  data = json.loads(path.read_text())
  edit(data)
  path.write_text(json.dumps(data))


def test_json_errors(tmp_path):
  _json_error(tmp_path, "captions_val2017.json", "not found")
  _json_error(tmp_path, "max_items", max_items=0)

  _write_json(tmp_path)
  (tmp_path / "val2017" / f"{13:012d}.jpg").unlink()
  _json_error(tmp_path, f"{13:012d}.jpg", "image id=13", "not found")
  coco.load_coco_captions(tmp_path, image_size=S, max_items=1)  # image 13 not needed: fine

  _write_json(tmp_path)
  (tmp_path / "val2017" / f"{25:012d}.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
  _json_error(tmp_path, f"{25:012d}.jpg", "image id=25", "unreadable image")

  _write_json(tmp_path)
  _edit_annotations(tmp_path, lambda d: d["annotations"][2].pop("caption"))
  _json_error(tmp_path, "captions_val2017.json", "annotations[2]", "no 'caption' field")

  _write_json(tmp_path)
  _edit_annotations(tmp_path, lambda d: d["images"][1].update(id="9"))
  _json_error(tmp_path, "images[1]", "'id' is str")

  _write_json(tmp_path)
  _edit_annotations(tmp_path, lambda d: d["annotations"][0].update(image_id=1234))
  _json_error(tmp_path, "annotations[0]", "image_id=1234", "not in 'images'")

  (tmp_path / "annotations" / "captions_val2017.json").write_text("{oops")
  _json_error(tmp_path, "captions_val2017.json", "not valid JSON")


# --- tfds coco_captions -------------------------------------------------------------------------

TFDS_SPLITS = {"val": [5, 8, 2, 11], "restval": [3]}  # image ids per split


def _tfds_example(image_id):
  caps = [(1000 + 10 * image_id + k, f"caption {k} of image {image_id}") for k in (2, 0, 1)]
  return {
      "image": _jpeg(_color(image_id), size=(10, 6)),
      "image/filename": f"COCO_val2014_{image_id:012d}.jpg",
      "image/id": image_id,
      "objects": {
          "id": [image_id],
          "area": [12],
          "bbox": np.array([[0.1, 0.2, 0.5, 0.6]], np.float32),
          "label": [3],
          "is_crowd": [False],
      },
      "captions": [{"id": i, "text": t} for i, t in caps],
  }


def write_tfds(data_dir, splits):
  """A prepared coco_captions data_dir written by tfds with the real builder's features.

  splits: {split name: [image ids]}.
  """
  tfds = pytest.importorskip("tensorflow_datasets")
  from tensorflow_datasets.object_detection import coco as tfds_coco
  from tensorflow_datasets.object_detection import coco_captions

  class Fixture(coco_captions.CocoCaptions, skip_registration=True):
    name = "coco_captions"

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(ids) for split, ids in splits.items()}

    def _generate_examples(self, ids):  # pylint: disable=arguments-differ
      for image_id in ids:
        yield image_id, _tfds_example(image_id)

  # The real `Coco._info` spells one dtype `tf.int64`; lend it NumPy's so that writing needs no
  # TensorFlow. Only while writing: reading must work with the real, unpatched module.
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tfds_coco, "tf", types.SimpleNamespace(int64=np.int64), raising=False)
    Fixture(data_dir=str(data_dir)).download_and_prepare(
        file_format=tfds.core.file_adapters.FileFormat.ARRAY_RECORD
    )
  return data_dir


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return write_tfds(tmp_path_factory.mktemp("tfds"), TFDS_SPLITS)


def _caption_to_id(text):
  return int(text.rsplit(" ", 1)[1])


def test_tfds_coco_captions(tfds_dir):
  version_dir = next(tfds_dir.glob("coco_captions/2014/*"))
  assert (version_dir / "features.json").is_file()
  assert list(version_dir.glob("coco_captions-val.array_record-*"))
  for data_dir in (tfds_dir, version_dir):
    pairs = coco.load_coco_tfds(data_dir, split="val", image_size=S)
    # tfds stores records in its own (hashed) order; match each pair by its caption.
    ids = [_caption_to_id(t) for t in pairs.texts]
    assert sorted(ids) == sorted(TFDS_SPLITS["val"])
    assert pairs.texts == tuple(f"caption 0 of image {i}" for i in ids)  # smallest caption id
    _check_images(pairs.images, ids)
  first = coco.load_coco_tfds(tfds_dir, split="val", image_size=S, max_items=2)
  assert first.texts == pairs.texts[:2]
  np.testing.assert_array_equal(first.images, pairs.images[:2])
  restval = coco.load_coco_tfds(tfds_dir, split="restval", image_size=S)
  assert restval.texts == ("caption 0 of image 3",)


def test_tfds_source_random_access(tfds_dir):
  source = coco.coco_tfds_source(tfds_dir, split="val", image_size=S)
  pairs = source.pairs()
  assert len(source) == len(TFDS_SPLITS["val"])
  order = [2, 2, 0]
  assert source.texts(order) == [pairs.texts[k] for k in order]
  np.testing.assert_array_equal(source.images(order), pairs.images[order])


def test_tfds_errors(tfds_dir, tmp_path):
  with pytest.raises(DataError, match="no split 'test'.*'restval', 'val'"):
    coco.load_coco_tfds(tfds_dir, split="test", image_size=S)
  with pytest.raises(DataError, match="no prepared coco_captions dataset"):
    coco.load_coco_tfds(tmp_path, split="val", image_size=S)
  # A dataset prepared in the default tfrecord format has no random access.
  version_dir = next(tfds_dir.glob("coco_captions/2014/*"))
  copy = tmp_path / "coco_captions" / "2014" / version_dir.name
  copy.mkdir(parents=True)
  info = json.loads((version_dir / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (copy / "dataset_info.json").write_text(json.dumps(info))
  (copy / "features.json").write_text((version_dir / "features.json").read_text())
  with pytest.raises(DataError, match="prepared as tfrecord.*--file_format=array_record"):
    coco.load_coco_tfds(tmp_path, split="val", image_size=S)
