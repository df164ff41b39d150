"""configs/siglip_datacomp_stream.py end to end on a tiny synthetic stream in the webdataset
layout: rounds, continued training, the bounded annotated window, resume, a stream too short."""

import dataclasses
import importlib.util
import json
import os

import jax
import numpy as np
import pytest

from mmal_jax import experiment
from mmal_jax import logs
from mmal_jax import loop
from mmal_jax.data import webdataset
from mmal_jax.training import checkpoints

_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "siglip_datacomp_stream.py")
WINDOW = 6


def _config(shards, test_shards, **overrides):
  spec = importlib.util.spec_from_file_location("datacomp_stream", _CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("16")  # buffers of 16, 4 bought from each, B_C = 8
  config.data.update(shards=shards, test_shards=test_shards)
  config.strategies = ("ours",)
  config.rounds = 3
  config.stream.annotated_window = WINDOW  # < the 12 pairs bought: the window is trimmed
  config.train.batch_size = 4
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
  root = tmp_path_factory.mktemp("stream")
  shards, test = webdataset.write_synthetic(
      str(root / "data"),
      num_pairs=50,
      num_test_pairs=10,
      samples_per_shard=20,
      cache_dir=str(root / "cache"),
  )
  config = _config(shards, test)
  workdir = str(root / "reference")
  records = loop.train_and_evaluate(config, workdir)
  return config, workdir, records, experiment.setup(config)


def _scores(records):
  return [{k: v for k, v in r.items() if k not in logs.TIMING_KEYS} for r in records]


def test_stream_run_rounds_and_window(stream):
  config, workdir, records, exp = stream
  assert [r["round"] for r in records] == [0, 1, 2, 3]
  assert [r["num_pairs"] for r in records] == [0, 4, 8, 12]
  assert [r["percent_annotated"] for r in records] == [0.0, 100 / 12, 200 / 12, 300 / 12]
  for r in records:
    assert {
        "i2t",
        "t2i",
        "zeroshot_color",
        "zeroshot_shape",
        "zeroshot_size",
        "zeroshot_background",
    } <= set(r)
  # Training continues: every round changes the model, so the held-out scores are recomputed
  # from new params; the saved state holds only the window's answers, not all 12 pairs bought.
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    state = loop.restore(exp, ckpt)
  finally:
    ckpt.close()
  assert state.round == 3 and len(state.log) == WINDOW
  img_ids, txt_ids = state.log.pairs()
  assert img_ids.min() >= 16 * 1  # the oldest pairs (buffer 0's) have left the window
  first = loop._initial_params(exp, 0)
  assert not all(
      np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(state.params))
  )
  # The window's stream positions, derived from its image items, are its text items' rows too.
  positions = loop._window_positions(exp, 0, state.log)
  in_last = txt_ids >= 32  # bought from buffer 2
  view = loop._buffer_view(exp, 0, 2)
  assert in_last.sum() == 4
  assert np.array_equal(positions[in_last] - 32, view.rows[1][txt_ids[in_last] - 32])


def test_stream_run_resumes_identically(stream, tmp_path, monkeypatch):
  config, _, records, _ = stream
  workdir = str(tmp_path / "run")
  real, calls = loop._stream_round, []

  def dies_in_round_2(exp, state, reader):
    calls.append(state.round)
    if state.round == 1:
      raise KeyboardInterrupt("killed")
    return real(exp, state, reader)

  monkeypatch.setattr(loop, "_stream_round", dies_in_round_2)
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(config, workdir)
  monkeypatch.setattr(loop, "_stream_round", real)
  resumed = loop.train_and_evaluate(config, workdir)  # re-reads the stream to refill the window
  assert _scores(resumed) == _scores(records)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert [json.loads(l)["round"] for l in f] == [0, 1, 2, 3]


def test_a_stream_too_short_is_one_line(stream):
  _, _, _, exp = stream  # 3 rounds of 16 fit in its 50 pairs; a 4th buffer does not
  exp = dataclasses.replace(
      exp, config=_config(exp.config.data.shards, exp.config.data.test_shards, rounds=4)
  )
  buffers = iter(exp.source.buffers(16))
  for b in range(3):  # 48 of the 50 pairs
    assert len(loop._next_buffer(exp, buffers, b)) == 16
  with pytest.raises(
      loop.RunError,
      match=r"ended after 50 usable pairs \(0 samples skipped\), "
      r"but config.rounds=4 buffers of 16 need 64; lower config.rounds",
  ):
    loop._next_buffer(exp, buffers, 3)
