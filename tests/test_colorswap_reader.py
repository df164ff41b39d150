"""ColorSwap reader on tiny fixtures written in the official JSON release and HF parquet layouts."""

import io
import json
import zipfile

import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmal_jax.data import colorswap
from mmal_jax.data.pairs import DataError

S = 4
GROUPS = {"train": 3, "test": 2}
# Stored as a grayscale / an RGBA PNG: the reader must still return 3-channel RGB.
GRAY, RGBA = ("train", 1, 0), ("test", 0, 1)


def _color(split, g, j):
  """A distinct solid RGB color per (split, group, image) so every image is identifiable."""
  k = 2 * g + j + (0 if split == "train" else 40)
  if (split, g, j) == GRAY:
    return (10 + 5 * k,) * 3
  return (10 + 5 * k, 200 - 3 * k, (37 * k) % 256)


def _png(color, size=(7, 5), mode="RGB"):
  img = PIL.Image.new("RGB", size, color)
  buf = io.BytesIO()
  img.convert(mode).save(buf, "PNG")
  return buf.getvalue()


def _groups(split):
  return [
      {
          "id": 100 * (split == "test") + g,
          "caption_1": f"{split} {g} a red cup on a blue table",
          "caption_2": f"{split} {g} a blue cup on a red table",
          "image_1": f"images/img_{split}_{g}_1.png",
          "image_2": f"images/img_{split}_{g}_2.png",
          "image_source": "midjourney",
          "caption_source": "human",
      }
      for g in range(GROUPS[split])
  ]


def _expected(split):
  """Independent reference: texts and (solid, lossless) images in the 2g / 2g+1 layout."""
  texts, images = [], []
  for group in _groups(split):
    g = group["id"] % 100
    for j in (0, 1):
      texts.append(group[f"caption_{j + 1}"])
      images.append(np.broadcast_to(np.array(_color(split, g, j), np.uint8), (S, S, 3)))
  return tuple(texts), np.stack(images)


def _image_bytes(split, g, j):
  mode = {GRAY: "L", RGBA: "RGBA"}.get((split, g, j), "RGB")
  return _png(_color(split, g, j), mode=mode)


def _write_official(folder, *, zipped=False):
  folder.mkdir(parents=True, exist_ok=True)
  files = {}
  for split in GROUPS:
    (folder / f"{split}.json").write_text(json.dumps(_groups(split)))
    for group in _groups(split):
      for j in (0, 1):
        files[group[f"image_{j + 1}"]] = _image_bytes(split, group["id"] % 100, j)
  if zipped:
    with zipfile.ZipFile(folder / "images.zip", "w") as z:
      for name, data in files.items():
        z.writestr(name, data)
  else:
    for name, data in files.items():
      (folder / name).parent.mkdir(exist_ok=True)
      (folder / name).write_bytes(data)


def _check(splits):
  for split in GROUPS:
    pairs = getattr(splits, split)
    texts, images = _expected(split)
    assert pairs.texts == texts
    assert pairs.images.dtype == np.uint8 and pairs.images.shape == (len(texts), S, S, 3)
    np.testing.assert_array_equal(pairs.images, images)


@pytest.mark.parametrize("zipped", [False, True], ids=["extracted", "images_zip"])
def test_official_release_layout(tmp_path, zipped):
  _write_official(tmp_path / "data", zipped=zipped)
  # The release unpacks into data/: both the folder and its parent are accepted.
  _check(colorswap.load_colorswap(tmp_path / "data", image_size=S))
  _check(colorswap.load_colorswap(tmp_path, image_size=S))


_HF_FEATURES = {
    "id": {"dtype": "int64", "_type": "Value"},
    "image_1": {"_type": "Image"},
    "image_2": {"_type": "Image"},
    "caption_1": {"dtype": "string", "_type": "Value"},
    "caption_2": {"dtype": "string", "_type": "Value"},
    "image_source": {"dtype": "string", "_type": "Value"},
    "caption_source": {"dtype": "string", "_type": "Value"},
}
_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _hf_table(split, groups=None):
  """The table `datasets` writes: Image columns as {bytes, path} structs, features in metadata."""
  groups = _groups(split) if groups is None else groups
  cols = {"id": pa.array([g["id"] for g in groups], pa.int64())}
  for j in (1, 2):
    cols[f"image_{j}"] = pa.array(
        [
            {"bytes": _image_bytes(split, g["id"] % 100, j - 1), "path": f"img_{g['id']}_{j}.png"}
            for g in groups
        ],
        _IMAGE,
    )
  for key in ("caption_1", "caption_2", "image_source", "caption_source"):
    cols[key] = pa.array([g[key] for g in groups], pa.string())
  meta = {"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})}
  return pa.table(cols).replace_schema_metadata(meta)


@pytest.mark.parametrize("naming", ["{split}-00000-of-00001.parquet", "{split}/0000.parquet"])
def test_hf_parquet_layout(tmp_path, naming):
  for split in GROUPS:
    f = tmp_path / "data" / naming.format(split=split)
    f.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_hf_table(split), f, row_group_size=1)  # several row groups, one per group
  _check(colorswap.load_colorswap(tmp_path, image_size=S))


def test_hf_parquet_path_only_images(tmp_path):
  """Image structs without embedded bytes point at files next to the parquet file."""
  for split in GROUPS:
    table = _hf_table(split)
    for j in (1, 2):
      col = table.column(f"image_{j}").combine_chunks()
      for struct in col.to_pylist():
        (tmp_path / struct["path"]).write_bytes(struct["bytes"])
      paths = pa.array([{"bytes": None, "path": s["path"]} for s in col.to_pylist()], _IMAGE)
      table = table.set_column(table.schema.get_field_index(f"image_{j}"), f"image_{j}", paths)
    pq.write_table(table, tmp_path / f"{split}-00000-of-00001.parquet")
  _check(colorswap.load_colorswap(tmp_path, image_size=S))


def test_squash_resize_keeps_whole_image(tmp_path):
  """A wide image is squashed (plain resize, like big_vision), not center-cropped."""
  _write_official(tmp_path)
  stripes = np.zeros((12, 60, 3), np.uint8)
  for c in range(3):
    stripes[:, 20 * c : 20 * (c + 1), c] = 255
  buf = io.BytesIO()
  PIL.Image.fromarray(stripes).save(buf, "PNG")
  (tmp_path / "images" / "img_train_0_1.png").write_bytes(buf.getvalue())
  img = colorswap.load_colorswap(tmp_path, image_size=3).train.images[0]
  # Column c is dominated by stripe c in every row; a center crop would be all green.
  np.testing.assert_array_equal(img.argmax(-1), np.tile(np.arange(3), (3, 1)))


def _error(path, *fragments):
  with pytest.raises(DataError) as e:
    colorswap.load_colorswap(path, image_size=S)
  message = str(e.value)
  assert "\n" not in message
  for fragment in fragments:
    assert str(fragment) in message, message


def test_official_errors(tmp_path):
  _error(tmp_path / "nope", "nope", "not found")
  _error(tmp_path, "no ColorSwap train data")  # neither layout

  _write_official(tmp_path)
  (tmp_path / "images" / "img_test_1_2.png").unlink()
  _error(tmp_path, "test.json", "record 1", "id=101", "img_test_1_2.png", "not found")

  _write_official(tmp_path)
  (tmp_path / "images" / "img_train_2_1.png").write_bytes(b"not a png")
  _error(tmp_path, "record 2", "id=2", "img_train_2_1.png", "unreadable image")

  for field, value, fragment in (
      ("caption_2", None, "missing field 'caption_2'"),
      ("caption_1", 7, "'caption_1' is int"),
  ):
    _write_official(tmp_path)
    groups = _groups("train")
    if value is None:
      del groups[1][field]
    else:
      groups[1][field] = value
    (tmp_path / "train.json").write_text(json.dumps(groups))
    _error(tmp_path, "train.json", "record 1", fragment)

  (tmp_path / "train.json").write_text("[{")
  _error(tmp_path, "train.json", "not valid JSON")


def test_official_zip_errors(tmp_path):
  _write_official(tmp_path, zipped=True)
  with zipfile.ZipFile(tmp_path / "images.zip") as z:
    kept = {n: z.read(n) for n in z.namelist() if not n.endswith("img_train_1_2.png")}
  with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:
    for name, data in kept.items():
      z.writestr(name, data)
  _error(tmp_path, "train.json", "record 1", "img_train_1_2.png", "images.zip", "not found")
  with pytest.raises(DataError, match="image_size must be a positive int"):
    colorswap.load_colorswap(tmp_path, image_size=0)


def test_parquet_errors(tmp_path):
  pq.write_table(_hf_table("train").drop_columns(["caption_2"]), tmp_path / "train-0.parquet")
  pq.write_table(_hf_table("test"), tmp_path / "test-0.parquet")
  _error(tmp_path, "train-0.parquet", "missing columns ['caption_2']")

  table = _hf_table("train")
  bad = pa.array([{"bytes": None, "path": None}] + table.column("image_2").to_pylist()[1:], _IMAGE)
  pq.write_table(table.set_column(2, "image_2", bad), tmp_path / "train-0.parquet")
  _error(tmp_path, "train-0.parquet", "row 0", "id=0", "image_2", "neither bytes nor path")

  table = _hf_table("train")
  broken = [dict(s, bytes=b"\x89PNG garbage") for s in table.column("image_1").to_pylist()]
  pq.write_table(
      table.set_column(1, "image_1", pa.array(broken, _IMAGE)), tmp_path / "train-0.parquet"
  )
  _error(tmp_path, "train-0.parquet", "row 0", "image_1", "unreadable image")

  (tmp_path / "test-0.parquet").write_bytes(b"PAR1 not really")
  _error(tmp_path, "test-0.parquet", "not a readable parquet file")
