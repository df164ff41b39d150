"""Outputs rebuilt from records: aggregation over seeds, savings, and the files a run leaves behind."""

import json
import os

import numpy as np
import pytest

from mmal_jax import logs


def _records():
  """Two strategies x two seeds x three rounds with hand-picked group scores."""
  group = {
      ("random", 0): [0.1, 0.2, 0.3],
      ("random", 1): [0.1, 0.4, 0.5],
      ("ours", 0): [0.1, 0.45, 0.6],
      ("ours", 1): [0.1, 0.35, 0.7],
  }
  out = []
  for (strategy, seed), scores in group.items():
    for rnd, g in enumerate(scores):
      out.append(
          dict(
              strategy=strategy,
              seed=seed,
              round=rnd,
              num_queried=10 * rnd,
              num_pairs=10 * rnd,
              percent_annotated=5.0 * rnd,
              modality=-1 if rnd == 0 else 1,
              group=g,
              text=g + 0.1,
              margin_incorrect=float("nan") if rnd == 0 else 0.01 * rnd,
              acquisition_seconds=0.5 * rnd,
              training_seconds=float(rnd),
          )
      )
  return out


def test_curves_mean_and_std_over_seeds():
  c = logs.curves(_records())
  x, mean, std, n = c["random"]["group"]
  np.testing.assert_allclose(x, [0, 5, 10])
  np.testing.assert_allclose(mean, [0.1, 0.3, 0.4])
  np.testing.assert_allclose(std, [0.0, 0.1, 0.1])  # population std over the two seeds
  np.testing.assert_array_equal(n, [2, 2, 2])
  assert logs.metric_names(_records()) == ["group", "text", "margin_incorrect"]


def test_savings_smallest_percent_reaching_baseline_final():
  s = logs.savings(_records(), headline="group")
  # random ends at mean 0.4 (pretrained: 0.1); ours' means are 0.1, 0.4, 0.65: reached at 5%.
  assert s["target"] == pytest.approx(0.4) and s["pretrained"] == pytest.approx(0.1)
  assert s["measurable"] and s["reach"] == {"random": 10.0, "ours": 5.0}
  assert s["saving"] == {"random": 0.0, "ours": 5.0}
  # Per seed: random ends at 0.3 (seed 0) and 0.5 (seed 1); ours reaches 0.3 at 5% (0.45) and
  # 0.5 at 10% (0.7, since 0.35 < 0.5): savings of 5 and 0 points.
  assert s["per_seed"]["ours"] == [5.0, 0.0] and s["per_seed"]["random"] == [0.0, 0.0]
  no_baseline = [r for r in _records() if r["strategy"] == "ours"]
  assert logs.savings(no_baseline, headline="group") is None


def test_savings_count_from_the_first_bought_round_and_only_when_the_baseline_gains():
  records = _records()
  # A strategy that only equals the target at round 0 (the pretrained model, nothing bought)
  # has not reached it.
  flat = [dict(r, strategy="flat", group=0.4 if r["round"] == 0 else 0.2) for r in records[:3]]
  flat += [dict(r, strategy="flat", group=0.4 if r["round"] == 0 else 0.2) for r in records[3:6]]
  s = logs.savings(records + flat, headline="group")
  assert s["reach"]["flat"] is None and s["saving"]["flat"] is None
  # A baseline that ends no higher than the pretrained model: no saving is measurable.
  worse = [
      dict(r, group=0.1 - 0.01 * r["round"]) if r["strategy"] == "random" else r for r in records
  ]
  s = logs.savings(worse, headline="group")
  assert not s["measurable"] and set(s["saving"].values()) == {None}
  summary = logs.summary_markdown(worse, headline="group")
  assert "No saving is measurable" in summary and "points" not in summary


def test_summary_savings_spread_over_seeds_and_compile_seconds_apart():
  records = [dict(r, compile_seconds=4.0 if r["round"] == 1 else 0.0) for r in _records()]
  summary = logs.summary_markdown(records, headline="group")
  assert "| acquisition s | training s | compile s |" in summary
  # ours: acquisition 0.5 + 1.0, training 1 + 2, compile 4 (totals over rounds, mean over seeds).
  assert "| 1.5 | 3.0 | 4.0 |" in summary
  assert "| ours | 5.0 | 5.0 points | 2.5 +- 2.5 points (2 of 2 seeds reach it) |" in summary
  one_seed = logs.summary_markdown([r for r in records if r["seed"] == 0], headline="group")
  assert "| ours | 5.0 | 5.0 points |" in one_seed and "seeds reach" not in one_seed


def test_write_outputs(tmp_path):
  records = _records()
  logs.write_outputs(str(tmp_path), records, headline="group")
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == len(records)
  first = json.loads(lines[0])
  assert (
      first["strategy"] == "random" and first["margin_incorrect"] is None
  )  # NaN -> null (strict JSON)
  summary = (tmp_path / "summary.md").read_text()
  assert "| ours | 10.0 | 0.650 +- 0.050" in summary
  assert "| ours | 5.0 | 5.0 points |" in summary
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  runs = sorted(os.listdir(tmp_path / "tensorboard"))
  assert runs == ["ours_seed0", "ours_seed1", "random_seed0", "random_seed1"]
  # Rewriting (as every round does) replaces the TensorBoard runs instead of appending to them.
  logs.write_outputs(str(tmp_path), records[:3], headline="group")
  assert sorted(os.listdir(tmp_path / "tensorboard")) == ["random_seed0"]
  assert not [p for p in os.listdir(tmp_path) if p.endswith((".tmp", ".old"))]


def _read_scalars(run_dir, tag):
  """Parses TFRecord-framed Event protos (u64 length, u32 crc, payload, u32 crc) without TensorFlow."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  out = []
  for name in os.listdir(run_dir):
    data = (run_dir / name).read_bytes()
    pos = 0
    while pos < len(data):
      length = int.from_bytes(data[pos : pos + 8], "little")
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      pos += 16 + length
      out += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
  return out


def test_tensorboard_scalars_readable(tmp_path):
  logs.write_tensorboard(_records(), str(tmp_path / "tb"))
  events = _read_scalars(tmp_path / "tb" / "ours_seed1", "group")
  assert [step for step, _ in events] == [0, 10, 20]
  np.testing.assert_allclose([v for _, v in events], [0.1, 0.35, 0.7], rtol=1e-6)


def test_progress_line_eta():
  line = logs.progress_line(
      _records()[4], headline="group", done=5, total=12, seconds_per_round=30.0
  )
  assert (
      "round 1" in line and "group=0.400" in line and "5/12 rounds" in line and "ETA 3m30s" in line
  )
  line = logs.progress_line(
      dict(_records()[4], compile_seconds=6.25),
      headline="group",
      done=5,
      total=12,
      seconds_per_round=30.0,
  )
  assert "acq 0.5s train 1.0s compile 6.2s" in line


def test_writer_off_process_zero_writes_and_prints_nothing(tmp_path, capsys):
  workdir = tmp_path / "run"
  quiet = logs.Writer(str(workdir), headline="group", active=False)
  quiet.write_config("{}")
  quiet.write_outputs(_records())
  quiet.print("a line")
  assert not workdir.exists() and capsys.readouterr().out == ""
  writer = logs.Writer(str(workdir), headline="group", active=True)
  writer.write_config('{"a": 1}')
  writer.write_config('{"a": 2}')  # config.json is written once, never replaced
  writer.write_outputs(_records(), plot=False)
  writer.print("a line")
  assert (workdir / "config.json").read_text() == '{"a": 1}'
  assert sorted(os.listdir(workdir)) == [
      "config.json",
      "metrics.jsonl",
      "summary.md",
      "tensorboard",
  ]
  assert capsys.readouterr().out == "a line\n"
