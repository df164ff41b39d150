"""Acquisition only on DataComp-style .npz features (mmal_jax.acquire), against the float64
brute force of test_acquisition_reference, and through its command line."""

import os

from absl import flags
import jax
import numpy as np
import pytest

from mmal_jax import acquire
from mmal_jax import acquisition
from mmal_jax.data import DataError

import test_acquisition_reference as ref

B, B_C = 6, 12
TIE_RESOLUTION = 1e-5  # as test_acquisition: float32 may order closer near-ties differently


def _write_features(directory, sizes, seed=0):
  """One .npz per size with the four DataComp keys; the first file carries uids."""
  rng = np.random.default_rng(seed)
  for f, n in enumerate(sizes):
    arrays = {
        k: ref.unit_rows(rng, n, 8 if k.startswith("b32") else 12)
        for k in ("b32_img", "b32_txt", "l14_img", "l14_txt")
    }
    if f == 0:
      arrays["uid"] = np.array([f"{f:02d}{i:030x}" for i in range(n)])
    np.savez(os.path.join(directory, f"{f:05d}.npz"), **arrays)
  return os.path.join(directory, "{00000..%05d}.npz" % (len(sizes) - 1))


def _reference_rounds(img, txt, rounds, annotated=None):
  """Pool mode from scratch every round in float64: the rows bought per round."""
  remaining, bought, out = np.arange(len(img)), [], []
  for _ in range(rounds):
    pools = [img[remaining], txt[remaining]]
    done = np.asarray(bought, np.int64)
    _, picks, gap = ref.ours(pools, [img[done], txt[done]], B, B_C, "euclidean")
    assert gap > TIE_RESOLUTION, "test data has a near-tie; change the seed"
    rows = remaining[sorted(picks)]
    out.append(set(rows.tolist()))
    bought += rows.tolist()
    remaining = np.setdiff1d(remaining, rows)
  return out


def test_pool_mode_matches_the_float64_reference_and_recomputing(tmp_path):
  pattern = _write_features(str(tmp_path), [40, 35])
  (img1, txt1, uids1), (img2, txt2, uids2) = list(acquire.read_features(pattern, "b32"))
  assert uids1[0] == "00" + "0" * 30 and uids2[:2] == ("00001:0", "00001:1")
  img, txt = np.concatenate([img1, img2]), np.concatenate([txt1, txt2])
  got = acquire.acquire_pool(
      img, txt, budget=B, rounds=4, coreset_size=B_C, key=jax.random.PRNGKey(0)
  )
  assert [set(rows.tolist()) for rows, _ in got] == _reference_rounds(
      img.astype(np.float64), txt.astype(np.float64), 4
  )
  # The incremental state picks what `select` from scratch picks each round.
  remaining, bought = np.arange(len(img)), np.zeros(0, np.int64)
  for rows, modality in got:
    sel = acquisition.select(
        "ours",
        [img[remaining], txt[remaining]],
        [img[bought], txt[bought]],
        batch_size=B,
        coreset_size=B_C,
        key=jax.random.PRNGKey(0),
    )
    assert remaining[np.asarray(sel.index)].tolist() == rows.tolist()
    assert np.asarray(sel.modality).tolist() == modality.tolist()
    bought, remaining = np.concatenate([bought, rows]), np.setdiff1d(remaining, rows)


def test_stream_mode_matches_the_float64_reference(tmp_path):
  pattern = _write_features(str(tmp_path), [25, 30, 20], seed=1)  # 75 rows: buffers 24, 24, 24, 3
  features = list(acquire.read_features(pattern, "l14"))
  img = np.concatenate([f[0] for f in features]).astype(np.float64)
  txt = np.concatenate([f[1] for f in features]).astype(np.float64)
  uids = sum((f[2] for f in features), ())
  for window in (0, 8):
    got = list(
        acquire.acquire_stream(
            acquire.buffers(iter(features), 24),
            budget=B,
            coreset_size=B_C,
            key=jax.random.PRNGKey(0),
            annotated_window=window,
        )
    )
    assert len(got) == 3  # the last 3 rows are fewer than a coreset: dropped
    bought = []
    for b, (picked, _) in enumerate(got):
      rows = np.arange(24 * b, 24 * (b + 1))
      s = np.asarray(bought[-window:] if window else bought, np.int64)
      _, picks, gap = ref.ours([img[rows], txt[rows]], [img[s], txt[s]], B, B_C, "euclidean")
      assert gap > TIE_RESOLUTION, "test data has a near-tie; change the seed"
      expected = rows[sorted(picks)]
      assert sorted(picked) == sorted(uids[i] for i in expected)
      bought += [uids.index(u) for u in picked]


def test_bad_files_are_one_line_errors(tmp_path):
  pattern = _write_features(str(tmp_path), [10])
  with pytest.raises(DataError, match=r"00001.npz does not exist \(pattern .*, 2 files\)"):
    list(acquire.read_features(str(tmp_path / "{00000..00001}.npz"), "b32"))
  np.savez(tmp_path / "bad.npz", b32_img=np.ones((3, 4), np.float32))
  with pytest.raises(DataError, match=r"lacks b32_img / b32_txt \(it has \['b32_img'\]\)"):
    list(acquire.read_features(str(tmp_path / "bad.npz"), "b32"))
  np.savez(
      tmp_path / "nan.npz",
      b32_img=np.full((3, 4), np.nan, np.float32),
      b32_txt=np.ones((3, 4), np.float32),
  )
  with pytest.raises(DataError, match="NaN, inf or zero row"):
    list(acquire.read_features(str(tmp_path / "nan.npz"), "b32"))
  assert len(list(acquire.read_features(pattern, "b32"))) == 1


def _cli(argv):
  """Runs the command line in this process (absl flags parsed afresh); returns its exit status."""
  acquire.define_flags()
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["acquire"] + argv)
  try:
    acquire.main([])
  except SystemExit as e:
    return e.code
  return 0


def test_command_line(tmp_path, capsys):
  pattern = _write_features(str(tmp_path), [30, 30])
  out = tmp_path / "picks.tsv"
  base = [f"--embeddings={pattern}", "--budget=5"]
  assert _cli(base + ["--rounds=2", f"--out={out}"]) == 0
  assert "10 picks written" in capsys.readouterr().out
  lines = out.read_text().splitlines()
  assert lines[0] == "uid\tround\tmodality" and len(lines) == 11
  feats = list(acquire.read_features(pattern, "b32"))
  img, txt = np.concatenate([f[0] for f in feats]), np.concatenate([f[1] for f in feats])
  uids = sum((f[2] for f in feats), ())
  expected = acquire.acquire_pool(
      img, txt, budget=5, rounds=2, coreset_size=10, key=jax.random.PRNGKey(0)
  )
  assert [l.split("\t")[0] for l in lines[1:]] == [
      uids[i] for rows, _ in expected for i in rows.tolist()
  ]
  assert [l.split("\t")[1] for l in lines[1:]] == ["1"] * 5 + ["2"] * 5
  assert _cli(base + ["--rounds=20", f"--out={tmp_path / 'x.tsv'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: --rounds=20 of --budget=5 (plus a last")
  assert not (tmp_path / "x.tsv").exists()
