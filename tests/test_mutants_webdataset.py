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
