"""WebDataset behaviours that a plausible one-line bug changes while tests/test_webdataset.py
passes (the mutation group "webdataset"), against expectations written out by hand."""

import pytest

from mmal_jax.data import DataError
from mmal_jax.data import webdataset


def test_brace_range_of_one_and_zero_padding():
  assert webdataset.expand("s/{7..7}.tar") == ["s/7.tar"]  # lo == hi is one shard, not an error
  assert webdataset.expand("{098..101}") == ["098", "099", "100", "101"]
  assert webdataset.expand("{0..0}{a,b}") == ["0a", "0b"]
  with pytest.raises(DataError, match="runs backwards"):
    webdataset.expand("{8..7}.tar")


def test_a_missing_first_train_shard_is_an_error_at_load_time(tmp_path):
  """load_webdataset opens nothing of the stream but its first shard's existence: a pattern that
  names no file fails at the call, before any round, naming the file."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from mmal_jax.data.pairs import Pairs  # pylint: disable=g-import-not-at-top

  test = webdataset.write_shards(
      str(tmp_path / "test"), [Pairs(np.zeros((2, 8, 8, 3), np.uint8), ("a", "b"))]
  )
  missing = str(tmp_path / "train" / "{00000..00001}.tar")
  with pytest.raises(DataError, match=r"train/00000.tar does not exist"):
    webdataset.load_webdataset(shards=missing, test_shards=test, image_size=8)
  stream, held_out = webdataset.load_webdataset(shards=test, test_shards=test, image_size=8)
  assert len(held_out) == 2 and [len(b) for b in stream] == [2]
