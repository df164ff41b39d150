"""Per-round acquisition time vs pool size N, for every strategy, beside a clean NumPy Algorithm 1.

  python -m experiments.bench_acquisition            # full run (~15 min on 2 busy CPU cores)
  python -m experiments.bench_acquisition --quick    # small sizes, 1 repeat (~1 min)
  python -m experiments.bench_acquisition --max-n 1000000 --max-round-seconds 600 --repeats 5

Setting: M = 2 modalities of N unit-norm random embeddings each (d = 512), K = B annotated items
per modality, the incremental state built untimed (what the loop carries), then one round of
`select_from_state` timed: median of --repeats runs after one untimed compile-and-run. A strategy
stops growing N once a round is predicted (from its last time and the fitted exponent so far) to
exceed --max-round-seconds (extrapolating from its last two sizes); that is how "uncertainty" and
"badge", which are quadratic, stop around the N where a round takes about a minute.

Memory floor: the machine's read bandwidth is measured here (best of a NumPy sum, a jitted JAX sum
and a BLAS matrix-vector product over a 1 GiB array). Greedy k-center reads the whole pool once per
new center, so its floor is num_centers * N * d * 4 bytes / bandwidth; "GB/s" below is that byte
count over the measured time, for the strategies whose cost is k-center passes.
Then the check the issue asks for: N = 200k, d = 512, B_C = 200, "ours" vs that floor and vs NumPy.

Writes experiments/results/bench_acquisition.json and prints a table.

  python -m experiments.bench_acquisition --parts --out experiments/results/bench_acquisition_parts.json

--parts: where a whole "ours" round from scratch (`select` on host arrays, N = --check-n, K = 1,000
annotated per modality, B = B_C = --check-coreset) spends its time: the whole round (also on device
pools, and with the state built as before commit 9d59712, reproduced in `_build_state_before`, so
that before and after are timed in turn under the same load), then its parts (input checks,
building the state, the round on the state) and the bare computations (step 1: nearest-annotated
distances of both pools; k-center alone; margins alone), and a square --matmul-n product through
XLA and through NumPy's BLAS (step 1's GFLOP/s against the CPU's matmul rate), each the minimum of
--repeats runs taken in turn in one process (ratios survive a loaded machine better than seconds;
os.getloadavg() is recorded with each), wall and process CPU seconds; then the same with
storage="bfloat16": the round on the state, k-center alone, and the share of picks that agree with
float32 storage over --bf16-seeds pools.
"""

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from mmal_jax import acquisition
from mmal_jax import files

STRATEGIES = ("ours", "numpy_ours", "coreset", "random", "uncertainty", "badge", "update_state")
# Strategies whose cost is k-center passes over the pool (bytes per round = passes * N * d * 4).
KCENTER_PASSES = {"ours": "coreset_size", "numpy_ours": "coreset_size", "coreset": "batch_size"}


def measure_read_bandwidth(num_bytes=1 << 30, repeats=5):
  """GB/s of the fastest of three full reads of a float32 array; returns (best, all)."""
  x = np.ones(num_bytes // 4, np.float32)
  xj = jnp.asarray(x)
  mat, vec = x.reshape(-1, 512), np.ones(512, np.float32)
  jsum = jax.jit(jnp.sum)
  readers = {
      "numpy_sum": lambda: x.sum(),
      "jax_sum": lambda: jsum(xj).block_until_ready(),
      "numpy_matvec": lambda: mat @ vec,
  }
  rates = {}
  for name, read in readers.items():
    read()
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      read()
      times.append(time.perf_counter() - t)
    rates[name] = num_bytes / min(times) / 1e9
  return max(rates.values()), rates


def numpy_ours(pools, caches, batch_size, coreset_size, chunk=16384):
  """Algorithm 1 in plain NumPy on the same incremental caches (squared distances)."""
  m = int(np.argmax([c.max() for c in caches]))
  x = pools[m]
  sq = np.einsum("nd,nd->n", x, x)
  cache = caches[m].copy()
  coreset = np.empty(coreset_size, np.int64)
  for i in range(coreset_size):
    j = int(np.argmax(cache))
    coreset[i] = j
    np.minimum(cache, np.maximum(sq + sq[j] - 2 * (x @ x[j]), 0), out=cache)
    cache[j] = -1.0
  queries = x[coreset]
  score = np.zeros(coreset_size, np.float32)
  for o, y in enumerate(pools):
    if o == m:
      continue
    top = np.full((coreset_size, 2), -np.inf, np.float32)
    for start in range(0, len(y), chunk):
      both = np.concatenate([top, queries @ y[start : start + chunk].T], axis=1)
      top = -np.partition(-both, 1, axis=1)[:, :2]
    score += top[:, 0] - top[:, 1]
  return m, coreset[np.argsort(score, kind="stable")[:batch_size]]


def make_pools(n, d, k, seed):
  """Two modalities of n unit rows plus k annotated rows each, generated on the device."""
  keys = jax.random.split(jax.random.key(seed), 4)

  def unit(key, rows):
    x = jax.random.normal(key, (rows, d), jnp.float32)
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)

  return [unit(keys[0], n), unit(keys[1], n)], [unit(keys[2], k), unit(keys[3], k)]


def time_round(fn, repeats, max_cell_seconds):
  """Median seconds of `fn` over up to `repeats` runs after one untimed (compiling) run."""
  fn()
  times = []
  while len(times) < repeats and (not times or sum(times) < max_cell_seconds):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), len(times)


def fit_exponent(ns, ts, min_n):
  pts = [(n, t) for n, t in zip(ns, ts) if n >= min_n] or list(zip(ns, ts))
  if len(pts) < 2:
    return None
  slope, _ = np.polyfit(np.log([n for n, _ in pts]), np.log([t for _, t in pts]), 1)
  return float(slope)


def strategy_round(name, state, pools_np, caches_np, args):
  kw = dict(batch_size=args.batch_size, coreset_size=args.coreset_size, key=jax.random.key(0))
  if name == "numpy_ours":
    return lambda: numpy_ours(pools_np, caches_np, args.batch_size, args.coreset_size)
  if name == "update_state":
    removed = [np.arange(args.batch_size)] * 2
    added = [p[: args.batch_size] for p in state.pools]
    return lambda: jax.block_until_ready(acquisition.update_state(state, removed, added).min_sq)
  return lambda: acquisition.select_from_state(name, state, **kw)


def run_grid(args, bandwidth):
  rows, predicted_out = [], set()
  history = {s: ([], []) for s in args.strategies}
  for n in args.sizes:
    pools, annotated = make_pools(n, args.dim, args.batch_size, seed=n)
    state = acquisition.init_state(pools, annotated)
    # Host copies only for the NumPy reference (at 2M x 256 they are 4 GB).
    numpy = "numpy_ours" in args.strategies
    pools_np = [np.asarray(p) for p in state.pools] if numpy else None
    caches_np = [np.asarray(c) for c in state.min_sq] if numpy else None
    for name in args.strategies:
      ns, ts = history[name]
      if name in predicted_out:
        continue
      if ts:
        # Extrapolate from the last two sizes (at least linearly): cheap, and it catches the
        # quadratic strategies one size before they blow the budget.
        exponent = fit_exponent(ns[-2:], ts[-2:], 0) if len(ts) > 1 else 1.0
        predicted = ts[-1] * (n / ns[-1]) ** max(exponent, 1.0)
        if predicted > args.max_round_seconds:
          predicted_out.add(name)
          rows.append(
              dict(
                  strategy=name,
                  n=n,
                  skipped=f"predicted {predicted:.0f} s per round "
                  f"> --max-round-seconds {args.max_round_seconds}",
              )
          )
          print(f"  skip {name:13s} N={n:>8d}: predicted {predicted:.0f} s", flush=True)
          continue
      seconds, runs = time_round(
          strategy_round(name, state, pools_np, caches_np, args),
          args.repeats,
          args.max_cell_seconds,
      )
      ns.append(n)
      ts.append(seconds)
      row = dict(strategy=name, n=n, seconds=seconds, runs=runs, load_average=os.getloadavg())
      if name in KCENTER_PASSES:
        passes = getattr(args, KCENTER_PASSES[name])
        gbytes = passes * n * args.dim * 4 / 1e9
        row.update(
            gb_per_s=gbytes / seconds,
            floor_seconds=gbytes / bandwidth,
            x_floor=seconds / (gbytes / bandwidth),
        )
      rows.append(row)
      print(f"  {name:13s} N={n:>8d}: {seconds:9.4f} s ({runs} runs)", flush=True)
    del pools, annotated, state, pools_np, caches_np
  exponents = {s: fit_exponent(*history[s], args.fit_min_n) for s in args.strategies}
  return rows, exponents


def floor_check(args, bandwidth):
  """ "ours" at N = 200k, d = 512, B_C = 200 against its k-center read floor and NumPy."""
  n, bc, b = args.check_n, args.check_coreset, min(args.batch_size, args.check_coreset)
  pools, annotated = make_pools(n, args.dim, b, seed=1)
  state = acquisition.init_state(pools, annotated)
  pools_np = [np.asarray(p) for p in state.pools]
  caches_np = [np.asarray(c) for c in state.min_sq]
  ours = lambda: acquisition.select_from_state(
      "ours", state, batch_size=b, coreset_size=bc, key=jax.random.key(0)
  )
  ref = lambda: numpy_ours(pools_np, caches_np, b, bc)
  sel, (m, picks) = ours(), ref()
  same = int(sel.modality[0]) == m and set(sel.index.tolist()) == set(picks.tolist())
  t_ours, _ = time_round(ours, args.repeats, args.max_cell_seconds)
  t_np, _ = time_round(ref, args.repeats, args.max_cell_seconds)
  floor = bc * n * args.dim * 4 / 1e9 / bandwidth
  return dict(
      n=n,
      dim=args.dim,
      coreset_size=bc,
      batch_size=b,
      ours_seconds=t_ours,
      numpy_seconds=t_np,
      floor_seconds=floor,
      ours_x_floor=t_ours / floor,
      ours_over_numpy=t_ours / t_np,
      same_selection_as_numpy=same,
  )


def _min_times(parts, repeats):
  """{name: dict(wall, cpu, load_average)}: the minimum over `repeats` runs of each callable,
  taken in turn (one untimed run each first)."""
  for f in parts.values():
    jax.block_until_ready(f())
  best = {}
  for _ in range(repeats):
    for name, f in parts.items():
      wall, cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(f())
      wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
      old = best.get(name, dict(wall=np.inf, cpu=np.inf, load_average=[]))
      best[name] = dict(
          wall=min(old["wall"], wall),
          cpu=min(old["cpu"], cpu),
          load_average=old["load_average"] + [os.getloadavg()[0]],
      )
    print("  " + ", ".join(f"{k} {v['wall']:.2f}" for k, v in best.items()), flush=True)
  return best


def _build_state_before(pools, annotated):
  """state.build_state as it was before the state was built with one copy per pool (commit 66ea071,
  float32 Euclidean case), kept here so that --parts times before and after in turn under the same
  load: np.pad of each host pool, a copying transfer (the padded array is not aligned for
  device_put to use in place), step 1, then the padding mask as a second program."""
  from mmal_jax.acquisition import distances  # pylint: disable=g-import-not-at-top
  from mmal_jax.acquisition import padding  # pylint: disable=g-import-not-at-top

  mask = jax.jit(lambda c, n: jnp.where(padding.valid_rows(c.shape[0], n), c, -jnp.inf))

  def old_pad(x, rows):
    if x.shape[0] == rows:
      return x
    if isinstance(x, jax.Array):
      return jnp.pad(x, ((0, rows - x.shape[0]), (0, 0)))
    return np.pad(np.asarray(x), ((0, rows - x.shape[0]), (0, 0)))

  sizes = [p.shape[0] for p in pools]
  padded = [
      distances.prepare(old_pad(p, max(padding.bucket(n), p.shape[0])), "euclidean")
      for p, n in zip(pools, sizes)
  ]
  min_sq = []
  for p, n, a in zip(padded, sizes, annotated):
    k = a.shape[0]
    centers = distances.prepare(old_pad(a, padding.bucket(k)), "euclidean")
    min_sq.append(mask(distances.min_sq_distances(p, centers, np.int32(k)), np.int32(n)))
  return acquisition.AcquisitionState(tuple(padded), tuple(min_sq), tuple(sizes), "euclidean")


def _matmul_parts(n):
  """A square n x n x n float32 product through XLA (HIGHEST precision, as step 1) and NumPy's
  BLAS: the CPU's matmul rate that step 1 is compared with."""
  x = jax.random.normal(jax.random.key(7), (n, n), jnp.float32)
  xn = np.asarray(x)
  dot = jax.jit(lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST))
  return dict(matmul_xla=lambda: dot(x, x), matmul_numpy=lambda: xn @ xn)


def parts_check(args):
  """The whole "ours" round against its parts, and bfloat16 storage against float32.

  Parts (each the minimum over --repeats, taken in turn): whole / whole_device: `select` on host
  (NumPy) / device pools; checks: the input checks; build_state / build_state_device: init_state on
  host / device pools; build_state_before / whole_before: the same with the state built as before
  commit 9d59712 (`_build_state_before`); round_on_state: select_from_state; step1, kcenter,
  margins: the bare computations on device pools; matmul_xla / matmul_numpy: the CPU's matmul rate;
  then the bfloat16 parts.
  """
  from mmal_jax.acquisition import checks  # pylint: disable=g-import-not-at-top
  from mmal_jax.acquisition import distances  # pylint: disable=g-import-not-at-top
  from mmal_jax.acquisition import kcenter  # pylint: disable=g-import-not-at-top
  from mmal_jax.acquisition import scores  # pylint: disable=g-import-not-at-top

  n, bc, k, d = args.check_n, args.check_coreset, args.parts_annotated, args.dim
  dev_pools, dev_annotated = make_pools(n, d, k, seed=1)
  pools, annotated = [np.asarray(p) for p in dev_pools], [np.asarray(a) for a in dev_annotated]
  kw = dict(batch_size=bc, coreset_size=bc, key=jax.random.key(0))
  state = acquisition.init_state(pools, annotated)
  half = acquisition.init_state(pools, annotated, storage="bfloat16")
  cache = distances.min_sq_distances(dev_pools[0], dev_annotated[0])
  queries = dev_pools[0][:bc]

  def whole_before():
    checks.check_modalities(pools, annotated)
    return acquisition.select_from_state("ours", _build_state_before(pools, annotated), **kw).index

  parts = dict(
      whole=lambda: acquisition.select("ours", pools, annotated, **kw).index,
      whole_before=whole_before,
      whole_device=lambda: acquisition.select("ours", dev_pools, dev_annotated, **kw).index,
      checks=lambda: checks.check_modalities(pools, annotated),
      build_state=lambda: acquisition.init_state(pools, annotated).padded_min_sq,
      build_state_before=lambda: _build_state_before(pools, annotated).padded_min_sq,
      build_state_device=lambda: acquisition.init_state(dev_pools, dev_annotated).padded_min_sq,
      round_on_state=lambda: acquisition.select_from_state("ours", state, **kw).index,
      step1=lambda: [distances.min_sq_distances(p, a) for p, a in zip(dev_pools, dev_annotated)],
      kcenter=lambda: kcenter.kcenter_sq(dev_pools[0], cache, bc),
      margins=lambda: scores.margins_f32(queries, dev_pools[1]),
      **_matmul_parts(args.matmul_n),
      round_on_state_bf16=lambda: acquisition.select_from_state("ours", half, **kw).index,
      kcenter_bf16=lambda: kcenter.kcenter_sq(half.padded_pools[0], half.padded_min_sq[0], bc),
  )
  # The state built before and after must be the same bits, and so the picks.
  before = _build_state_before(pools, annotated)
  same_state = all(
      np.asarray(a).tobytes() == np.asarray(b).tobytes()
      for a, b in zip(
          before.padded_pools + before.padded_min_sq, state.padded_pools + state.padded_min_sq
      )
  )
  same_picks = np.array_equal(np.asarray(whole_before()), np.asarray(parts["whole"]()))
  best = _min_times(parts, args.repeats)
  agree = []
  for seed in range(args.bf16_seeds):
    p, a = make_pools(min(n, 20_000), d, k, seed=100 + seed)
    f32 = acquisition.select("ours", p, a, **kw)
    bf = acquisition.select("ours", p, a, storage="bfloat16", **kw)
    same = int(f32.modality[0]) == int(bf.modality[0])
    agree.append(len(set(f32.index.tolist()) & set(bf.index.tolist())) / bc if same else 0.0)
  units = ("wall", "cpu")
  bare = ("step1", "kcenter", "margins")
  ideal = {u: sum(best[p][u] for p in bare) for u in units}
  # Step 1 computes 2 N K d multiply-adds per modality (2 modalities); the square products n^3.
  step1_gflop = 2 * (2 * n * k * d) / 1e9
  matmul_gflop = 2 * args.matmul_n**3 / 1e9
  gflops = {
      u: dict(
          step1=step1_gflop / best["step1"][u],
          matmul_xla=matmul_gflop / best["matmul_xla"][u],
          matmul_numpy=matmul_gflop / best["matmul_numpy"][u],
      )
      for u in units
  }
  shares = {}
  for whole, build in (
      ("whole", "build_state"),
      ("whole_before", "build_state_before"),
      ("whole_device", "build_state_device"),
  ):
    shares[whole] = {
        u: {
            p: best[p][u] / best[whole][u]
            for p in ("checks", build, "round_on_state", "step1", "kcenter", "margins")
        }
        | {
            "rest": 1
            - sum(best[p][u] for p in ("checks", build, "round_on_state")) / best[whole][u]
        }
        for u in units
    }
  return dict(
      n=n,
      dim=d,
      annotated=k,
      coreset_size=bc,
      batch_size=bc,
      repeats=args.repeats,
      parts=best,
      whole_over_sum_of_bare_parts={
          w: {u: best[w][u] / ideal[u] for u in units}
          for w in ("whole", "whole_before", "whole_device")
      },
      build_state_over_step1={
          b: {u: best[b][u] / best["step1"][u] for u in units}
          for b in ("build_state", "build_state_before", "build_state_device")
      },
      shares_of_whole=shares,
      gflop_per_s=gflops,
      matmul_n=args.matmul_n,
      same_state_and_picks_as_before=bool(same_state and same_picks),
      bf16_round_speedup={
          u: best["round_on_state"][u] / best["round_on_state_bf16"][u] for u in units
      },
      bf16_kcenter_speedup={u: best["kcenter"][u] / best["kcenter_bf16"][u] for u in units},
      bf16_pick_agreement=dict(
          n=min(n, 20_000), seeds=args.bf16_seeds, per_seed=agree, mean=float(np.mean(agree))
      ),
      load_average_end=os.getloadavg(),
  )


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--min-n", type=float, default=1e3)
  p.add_argument("--max-n", type=float, default=1e6)
  p.add_argument("--points-per-decade", type=int, default=2)
  p.add_argument("--dim", type=int, default=512)
  p.add_argument("--batch-size", type=int, default=512)
  p.add_argument("--coreset-size", type=int, default=1024)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument(
      "--max-round-seconds",
      type=float,
      default=60.0,
      help="stop growing N for a strategy once a round is predicted to take longer",
  )
  p.add_argument(
      "--max-cell-seconds",
      type=float,
      default=30.0,
      help="stop repeating a (strategy, N) cell once its timed runs add up to this",
  )
  p.add_argument(
      "--fit-min-n",
      type=float,
      default=1e4,
      help="fit the exponent on N >= this (smaller N measure per-call overhead)",
  )
  p.add_argument("--strategies", default=",".join(STRATEGIES))
  p.add_argument("--check-n", type=int, default=200_000)
  p.add_argument("--check-coreset", type=int, default=200)
  p.add_argument("--no-check", action="store_true")
  p.add_argument("--parts", action="store_true", help="only the parts and bfloat16 check")
  p.add_argument("--parts-annotated", type=int, default=1000)
  p.add_argument("--bf16-seeds", type=int, default=5)
  p.add_argument("--matmul-n", type=int, default=4096, help="--parts: square product size")
  p.add_argument("--quick", action="store_true", help="N <= 3e4, d = 128, 1 repeat, small check")
  p.add_argument(
      "--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_acquisition.json")
  )
  args = p.parse_args()
  if args.quick:
    args.max_n, args.dim, args.repeats, args.check_n = min(args.max_n, 3e4), 128, 1, 20_000
    args.batch_size, args.coreset_size, args.max_round_seconds = 64, 128, 10.0
    args.fit_min_n = 3e3
  args.strategies = tuple(args.strategies.split(","))
  unknown = set(args.strategies) - set(STRATEGIES)
  if unknown:
    p.error(f"--strategies: unknown {sorted(unknown)}; choose from {STRATEGIES}")
  decades = np.log10(args.max_n) - np.log10(args.min_n)
  grid = np.logspace(
      np.log10(args.min_n), np.log10(args.max_n), int(round(decades * args.points_per_decade)) + 1
  )
  args.sizes = sorted({max(int(round(n)), args.coreset_size) for n in grid})
  return args


def print_table(rows, exponents, check, bandwidth, rates):
  print(
      f"\nread bandwidth: {bandwidth:.1f} GB/s (best of "
      + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
      + ")"
  )
  print(f"{'strategy':13s} {'N':>9s} {'s/round':>10s} {'GB/s':>7s} {'x floor':>8s}")
  for r in rows:
    if "skipped" in r:
      print(f"{r['strategy']:13s} {r['n']:>9d} {'skipped: ' + r['skipped']}")
      continue
    gbs = f"{r['gb_per_s']:7.1f}" if "gb_per_s" in r else f"{'-':>7s}"
    xf = f"{r['x_floor']:8.2f}" if "x_floor" in r else f"{'-':>8s}"
    print(f"{r['strategy']:13s} {r['n']:>9d} {r['seconds']:10.4f} {gbs} {xf}")
  print(
      "fitted exponent of time vs N: "
      + ", ".join(f"{s} {e:.2f}" if e is not None else f"{s} -" for s, e in exponents.items())
  )
  if check:
    print(
        f"check N={check['n']} d={check['dim']} B_C={check['coreset_size']}: ours "
        f"{check['ours_seconds']:.2f} s = {check['ours_x_floor']:.2f}x the k-center read floor "
        f"({check['floor_seconds']:.2f} s), {check['ours_over_numpy']:.2f}x NumPy "
        f"({check['numpy_seconds']:.2f} s); same selection as NumPy: "
        f"{check['same_selection_as_numpy']}"
    )


def main():
  args = parse_args()
  if args.parts:
    result = parts_check(args)
    result["machine"] = dict(
        platform=platform.platform(), cpu_count=os.cpu_count(), jax=jax.__version__
    )
    print(json.dumps({k: v for k, v in result.items() if k != "parts"}, indent=1))
    print(f"{'part':20s} {'wall s':>8s} {'cpu s':>8s} {'of whole (cpu)':>15s}")
    for name, t in result["parts"].items():
      share = t["cpu"] / result["parts"]["whole"]["cpu"]
      print(f"{name:20s} {t['wall']:8.2f} {t['cpu']:8.2f} {share:15.3f}")
    files.write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return
  bandwidth, rates = measure_read_bandwidth()
  print(f"read bandwidth {bandwidth:.1f} GB/s; sizes {args.sizes}", flush=True)
  rows, exponents = run_grid(args, bandwidth)
  check = None if args.no_check else floor_check(args, bandwidth)
  print_table(rows, exponents, check, bandwidth, rates)
  result = dict(
      setting=dict(
          dim=args.dim,
          batch_size=args.batch_size,
          coreset_size=args.coreset_size,
          repeats=args.repeats,
          max_round_seconds=args.max_round_seconds,
          fit_min_n=args.fit_min_n,
          sizes=args.sizes,
          modalities=2,
          annotated_per_modality=args.batch_size,
      ),
      machine=dict(
          platform=platform.platform(),
          cpu_count=os.cpu_count(),
          devices=[str(d) for d in jax.devices()],
          jax=jax.__version__,
          read_bandwidth_gb_per_s=bandwidth,
          read_bandwidth_by_method=rates,
          load_average=os.getloadavg(),
      ),
      rows=rows,
      exponents=exponents,
      floor_check=check,
  )
  files.write_text(args.out, json.dumps(result, indent=1))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
