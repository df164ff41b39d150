"""Acquisition only, on precomputed embeddings: which pairs of a pool or a stream to annotate, with
no model at all (DataComp ships CLIP features per shard).

  python -m mmal_jax.acquire --embeddings='feats/{00000..00003}.npz' --key=b32 --budget=512 \\
      --rounds=4 --out=picks.tsv                    # the whole pool, 4 rounds of 512
  python -m mmal_jax.acquire --embeddings='feats/{00000..00003}.npz' --key=b32 --budget=512 \\
      --buffer_size=2048 --out=picks.tsv            # a stream: 512 of each buffer of 2048

Input: `.npz` files as DataComp's, one per shard, holding f[n, d] arrays `{key}_img` and
`{key}_txt` (keys b32_img, b32_txt, l14_img, l14_txt: CLIP B/32 and L/14 features), row i of both
the same pair; its uid is the file's `uid` array when there is one, else the `uid` column of a
`.parquet` of the same name beside it (DataComp's metadata; needs pyarrow, the `data` extra), else
`<file stem>:<row>`. Files are read one at a time.

The learner sees the image and text features as two unaligned pools; querying an item reveals its
partner (the other modality's row of the same pair): both leave the pools and the pair joins the
annotated set S. Features are L2-normalized on reading (CLIP features are, up to rounding).
- Pool (buffer_size 0): every row of every file, `rounds` rounds of `budget` queries. The features
  never change, so the state (pools and each item's distance to S) is built once (`init_state`)
  and carried across rounds (`update_state`, O(N B d) a round instead of O(N |S| d)).
- Stream (buffer_size > 0): the rows in file order, cut into buffers; one round of `budget` queries
  per buffer against S so far (its last `annotated_window` pairs when > 0, which bounds memory);
  what is not picked is gone. Memory: one file, one buffer and S.
Output (written atomically): a TSV with a header, one line per query in buying order: uid, round
(1-based), modality queried (image / text).
"""

import itertools
import os
import sys
from typing import Iterator

from absl import app
from absl import flags
import jax
import numpy as np

from mmal_jax import acquisition
from mmal_jax import files
from mmal_jax import host_memory
from mmal_jax.annotation.oracle import MODALITY_NAMES
from mmal_jax.data.pairs import DataError
from mmal_jax.data.webdataset import expand

KEYS = ("b32", "l14")


def _uids(path, n):
  with np.load(path) as f:
    if "uid" in f.files:
      return tuple(str(u) for u in f["uid"])
  parquet = os.path.splitext(path)[0] + ".parquet"
  if os.path.isfile(parquet):
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

    uids = pq.read_table(parquet, columns=["uid"]).column("uid").to_pylist()
    if len(uids) != n:
      raise DataError(f"{parquet} has {len(uids)} uids but {path} has {n} rows; they must match")
    return tuple(str(u) for u in uids)
  stem = os.path.splitext(os.path.basename(path))[0]
  return tuple(f"{stem}:{i}" for i in range(n))


def read_features(pattern: str, key: str) -> Iterator[tuple[np.ndarray, np.ndarray, tuple]]:
  """(image f32[n, d], text f32[n, d], uids) of each file of a brace pattern, L2-normalized, one
  file at a time; raises DataError naming the file on a missing file or key, or bad rows."""
  paths = expand(pattern)
  for path in paths:  # all checked before any is read
    if not os.path.isfile(path):
      raise DataError(
          f"embeddings file {path} does not exist (pattern {pattern!r}, {len(paths)} files); fix "
          "the pattern or restore the file"
      )
  for path in paths:
    try:
      with np.load(path) as f:
        names = f.files
        arrays = [
            np.asarray(f[f"{key}_{m}"], np.float32) for m in ("img", "txt") if f"{key}_{m}" in names
        ]
    except (OSError, ValueError) as e:
      raise DataError(f"embeddings file {path} is not a readable .npz ({e}); rewrite it") from None
    if len(arrays) < 2:
      raise DataError(
          f"embeddings file {path} lacks {key}_img / {key}_txt (it has {sorted(names)}); pass "
          f"--key as one of {KEYS} that it holds"
      )
    img, txt = arrays
    if img.ndim != 2 or img.shape != txt.shape or not len(img):
      raise DataError(
          f"embeddings file {path}: {key}_img {img.shape} and {key}_txt {txt.shape} must both be "
          "[n > 0, d], row i of both the same pair"
      )
    norms = [np.linalg.norm(a, axis=1, keepdims=True) for a in (img, txt)]
    if not all(np.isfinite(a).all() and (n > 0).all() for a, n in zip((img, txt), norms)):
      raise DataError(f"embeddings file {path} has a NaN, inf or zero row; drop or fix those rows")
    yield img / norms[0], txt / norms[1], _uids(path, len(img))


def _round(strategy, state, rows, *, budget, coreset_size, key):
  """One round on `state`, whose pools hold the pairs `rows[m]` (int64, one per pool position).
  Buys the picks best first, skipping one already revealed as an earlier pick's partner; returns
  (bought rows int64[k], modality queried int64[k])."""
  picks = acquisition.picks_for_budget(strategy, budget, state.sizes)
  selection = acquisition.select_from_state(
      strategy, state, batch_size=picks, coreset_size=max(coreset_size, picks), key=key
  )
  bought, queried = [], []
  for m, i in zip(np.asarray(selection.modality).tolist(), np.asarray(selection.index).tolist()):
    if len(bought) == budget:
      break
    row = int(rows[m][i])
    if row not in bought:
      bought.append(row)
      queried.append(m)
  return np.asarray(bought, np.int64), np.asarray(queried, np.int64)


def acquire_pool(
    img, txt, *, strategy="ours", budget, rounds, coreset_size, key, metric="euclidean"
):
  """`rounds` rounds of `budget` queries on one pool (rows of img, txt: the pairs), the state
  carried across rounds. Returns [(bought rows, modalities)] per round."""
  state = acquisition.init_state([img, txt], [img[:0], txt[:0]], metric=metric)
  rows = [np.arange(len(img)), np.arange(len(txt))]
  out = []
  for r in range(rounds):
    bought, queried = _round(
        strategy,
        state,
        rows,
        budget=budget,
        coreset_size=coreset_size,
        key=jax.random.fold_in(key, r),
    )
    removed = [np.searchsorted(rows[m], bought) for m in (0, 1)]  # rows stay sorted
    state = acquisition.update_state(state, removed, [img[bought], txt[bought]])
    rows = [np.delete(rows[m], removed[m]) for m in (0, 1)]
    out.append((bought, queried))
  return out


def buffers(files_iter, size) -> Iterator[tuple[np.ndarray, np.ndarray, tuple]]:
  """Regroups (img, txt, uids) per file into buffers of `size` rows (the last may be shorter)."""
  pending = []
  for img, txt, uids in files_iter:
    start = 0
    while start < len(img):
      have = sum(len(p[0]) for p in pending)
      take = min(size - have, len(img) - start)
      pending.append(
          (img[start : start + take], txt[start : start + take], uids[start : start + take])
      )
      start += take
      if have + take == size:
        yield _join(pending)
        pending = []
  if pending:
    yield _join(pending)


def _join(parts):
  return (
      np.concatenate([p[0] for p in parts]),
      np.concatenate([p[1] for p in parts]),
      tuple(itertools.chain(*(p[2] for p in parts))),
  )


def acquire_stream(
    stream, *, strategy="ours", budget, coreset_size, key, metric="euclidean", annotated_window=0
):
  """One round of `budget` queries per buffer of `stream` ((img, txt, uids) buffers), against the
  pairs bought so far (the last `annotated_window` when > 0). Yields (uids bought, modalities);
  a last buffer shorter than coreset_size is dropped."""
  s_img = s_txt = None
  for b, (img, txt, uids) in enumerate(stream):
    if s_img is None:
      s_img, s_txt = img[:0], txt[:0]
    if len(img) < coreset_size:
      return
    state = acquisition.init_state([img, txt], [s_img, s_txt], metric=metric)
    bought, queried = _round(
        strategy,
        state,
        [np.arange(len(img))] * 2,
        budget=budget,
        coreset_size=coreset_size,
        key=jax.random.fold_in(key, b),
    )
    s_img, s_txt = np.concatenate([s_img, img[bought]]), np.concatenate([s_txt, txt[bought]])
    if annotated_window:
      s_img, s_txt = s_img[-annotated_window:], s_txt[-annotated_window:]
    yield tuple(uids[i] for i in bought.tolist()), queried


_EMBEDDINGS = None
_KEY = None
_BUDGET = None
_ROUNDS = None
_BUFFER = None
_CORESET = None
_STRATEGY = None
_METRIC = None
_WINDOW = None
_SEED = None
_OUT = None


def define_flags():
  """The command line's flags, on absl's global FLAGS; defined when run as a script or by a test,
  so that importing this module next to other command-line modules defines none."""
  global _EMBEDDINGS, _KEY, _BUDGET, _ROUNDS, _BUFFER, _CORESET, _STRATEGY, _METRIC, _WINDOW, _SEED
  global _OUT
  if _EMBEDDINGS is not None:  # already defined
    return
  _EMBEDDINGS = flags.DEFINE_string("embeddings", None, "brace pattern of .npz feature files")
  _KEY = flags.DEFINE_enum("key", "b32", KEYS, "which features: {key}_img and {key}_txt")
  _BUDGET = flags.DEFINE_integer("budget", 512, "queries per round (B)")
  _ROUNDS = flags.DEFINE_integer("rounds", 1, "pool mode: rounds of --budget queries")
  _BUFFER = flags.DEFINE_integer("buffer_size", 0, "> 0: stream mode, one round per buffer")
  _CORESET = flags.DEFINE_integer("coreset_size", 0, "B_C (0: 2 * budget)")
  _STRATEGY = flags.DEFINE_string("strategy", "ours", "ours, random, coreset, uncertainty, badge")
  _METRIC = flags.DEFINE_enum("metric", "euclidean", ("euclidean", "cosine"), "distance")
  _WINDOW = flags.DEFINE_integer(
      "annotated_window", 0, "stream mode: S = last pairs bought (0: all)"
  )
  _SEED = flags.DEFINE_integer("seed", 0, "PRNG seed (random, coreset, badge)")
  _OUT = flags.DEFINE_string("out", None, "output TSV: uid, round, modality per query")


def _run():
  """Checks the flags, runs, writes --out; returns the line to print."""
  if not _EMBEDDINGS.value or not _OUT.value:
    raise DataError("--embeddings and --out are required, e.g. --embeddings='f/{0000..0003}.npz'")
  budget, coreset = _BUDGET.value, _CORESET.value or 2 * _BUDGET.value
  if budget < 1 or coreset < budget or _ROUNDS.value < 1 or _BUFFER.value < 0:
    raise DataError(
        f"--budget={budget} must be >= 1, --coreset_size={coreset} >= budget, --rounds >= 1 and "
        "--buffer_size >= 0"
    )
  try:
    strategy = acquisition.as_strategy(_STRATEGY.value)
  except ValueError as e:
    raise DataError(f"--strategy: {e}") from None
  key = jax.random.PRNGKey(_SEED.value)
  features = read_features(_EMBEDDINGS.value, _KEY.value)
  kwargs = dict(
      strategy=strategy, budget=budget, coreset_size=coreset, key=key, metric=_METRIC.value
  )
  lines = []
  if _BUFFER.value:
    if _BUFFER.value < coreset:
      raise DataError(f"--buffer_size={_BUFFER.value} must hold a coreset of {coreset}")
    for r, (uids, queried) in enumerate(
        acquire_stream(buffers(features, _BUFFER.value), annotated_window=_WINDOW.value, **kwargs)
    ):
      lines += [f"{u}\t{r + 1}\t{MODALITY_NAMES[m]}" for u, m in zip(uids, queried.tolist())]
  else:
    img, txt, uids = _join(list(features))
    if budget * _ROUNDS.value + coreset - budget > len(img):
      raise DataError(
          f"--rounds={_ROUNDS.value} of --budget={budget} (plus a last coreset of {coreset}) "
          f"exceed the pool of {len(img)} pairs; lower them"
      )
    for r, (bought, queried) in enumerate(acquire_pool(img, txt, rounds=_ROUNDS.value, **kwargs)):
      lines += [
          f"{uids[i]}\t{r + 1}\t{MODALITY_NAMES[m]}"
          for i, m in zip(bought.tolist(), queried.tolist())
      ]
  files.write_text(_OUT.value, "uid\tround\tmodality\n" + "".join(l + "\n" for l in lines))
  return f"{len(lines)} picks written to {_OUT.value}"


def main(argv):
  del argv
  try:
    print(_run())
  except (DataError, ValueError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  host_memory.reuse_freed_memory()  # before the first JAX computation starts XLA's threads
  define_flags()
  app.run(main)
