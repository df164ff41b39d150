"""Train-step throughput of the two-tower models, with model FLOPs and MFU.

  python -m experiments.bench_train                 # embedded default + B/16 at batch 64
  python -m experiments.bench_train --quick         # embedded default only (~1 min)

For each model: one jitted `train.train_step` (SigLIP loss, AdamW) on a fixed random batch on the
default device, compiled ahead of time, one untimed warm-up step, then the median of --steps timed
steps. B/16 runs at batch 64, or the largest batch halving it gives whose compiled step
(arguments + outputs + XLA temporaries, from `memory_analysis`) fits in 90% of the free memory.
On CPU a B/16 step takes minutes, so there it gets 2 timed steps after the warm-up.
FLOPs per example are counted analytically from the matrix products of the forward pass (patch
embedding, attention projections, attention scores and mixing, MLPs, MAP head, output heads, the
B x B logits) and multiplied by 3 for forward + backward; XLA's own count for the whole step
(optimizer included) is reported beside it. MFU = achieved model FLOP/s over this machine's
measured float32 matmul rate (best of a few square matmuls), not over a datasheet peak.
Writes experiments/results/bench_train.json and prints a table. Timings on a shared machine are
noisy: rerun on an idle one before quoting them.
"""

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmal_jax import defaults
from mmal_jax import files
from mmal_jax import host_memory
from mmal_jax import models
from mmal_jax.models import vit
from mmal_jax.training import train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_train.json")


def matmul_rate(sizes=(1024, 2048), repeats=5) -> float:
  """Best measured float32 matmul FLOP/s on the default device."""
  f = jax.jit(jnp.matmul)
  best = 0.0
  for n in sizes:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    f(a, a).block_until_ready()
    for _ in range(repeats):
      t = time.perf_counter()
      f(a, a).block_until_ready()
      best = max(best, 2 * n**3 / (time.perf_counter() - t))
  return best


def _encoder_flops(n, width, depth, mlp_dim):
  # Per layer: QKV + output projections 8 n w^2, scores and mixing 4 n^2 w, MLP 4 n w mlp.
  return depth * (8 * n * width**2 + 4 * n * n * width + 4 * n * width * mlp_dim)


def forward_flops_per_example(cfg, batch: int) -> float:
  """Matmul FLOPs of one example's forward pass through both towers and the logits."""
  img = vit.decode_variant(cfg.image.variant)
  img.update({k: v for k, v in cfg.image.items() if k in img})
  p = img["patch_size"][0]
  n = (cfg.image_size // p) ** 2
  w, m = img["width"], img["mlp_dim"]
  flops = 2 * n * p * p * 3 * w + _encoder_flops(n, w, img["depth"], m) + 2 * w * cfg.out_dim
  if cfg.image.get("pool_type") == "map":
    flops += 4 * w * w + 4 * n * w * w + 4 * n * w + 4 * w * m
  txt = vit.decode_variant(cfg.text.variant)
  l, tw = cfg.text.max_len, txt["width"]
  flops += _encoder_flops(l, tw, txt["depth"], txt["mlp_dim"]) + 2 * tw * cfg.out_dim
  return flops + 2 * batch * cfg.out_dim


def free_memory_bytes() -> float:
  """Memory the default device can still hand out: the accelerator's allocator limit minus what is
  in use, or on CPU the host's MemAvailable."""
  stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
  if stats and "bytes_limit" in stats:
    return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  with open("/proc/meminfo") as f:
    return float(next(l.split()[1] for l in f if l.startswith("MemAvailable"))) * 1024


def compile_step(cfg, batch):
  """(compiled train step, compile seconds, bytes the step needs: arguments + outputs + temps).

  Compiled from shapes alone, so a batch that does not fit is rejected before any allocation."""
  model = models.get_model(cfg)
  params = jax.eval_shape(lambda: models.init_params(model, cfg, jax.random.key(0)))
  opt_state = jax.eval_shape(
      lambda p: train.init_opt_state(p, weight_decay=0.1, grad_clip=1.0, lock_image=False), params
  )
  data = dict(
      image=jax.ShapeDtypeStruct((batch, cfg.image_size, cfg.image_size, 3), jnp.float32),
      text=jax.ShapeDtypeStruct((batch, cfg.text.max_len), jnp.int32),
      mask=jax.ShapeDtypeStruct((batch,), jnp.bool_),
  )
  hp = dict(model=model, loss="sigmoid", lock_image=False, weight_decay=0.1, grad_clip=1.0)
  t = time.perf_counter()
  compiled = train.train_step.lower(
      params, opt_state, data, jax.ShapeDtypeStruct((), jnp.float32), **hp
  ).compile()
  mem = compiled.memory_analysis()
  need = (
      (
          mem.argument_size_in_bytes
          + mem.output_size_in_bytes
          + mem.temp_size_in_bytes
          - mem.alias_size_in_bytes
      )
      if mem is not None
      else 0
  )
  return compiled, time.perf_counter() - t, need


def largest_fitting_batch(cfg, batch, free_bytes):
  """Halve `batch` until its compiled step needs at most 90% of free_bytes; returns
  (batch, compiled, compile_s, bytes needed)."""
  while True:
    compiled, compile_s, need = compile_step(cfg, batch)
    print(
        f"  {cfg.image.variant} batch {batch}: step needs {need / 2**30:.1f} GiB of "
        f"{free_bytes / 2**30:.1f} GiB free",
        flush=True,
    )
    if need <= 0.9 * free_bytes or batch == 1:
      return batch, compiled, compile_s, need
    batch //= 2


def bench(name, cfg, batch, steps, fit_memory=False):
  if fit_memory:
    batch, compiled, compile_s, need = largest_fitting_batch(cfg, batch, free_memory_bytes())
  else:
    compiled, compile_s, need = compile_step(cfg, batch)
  model = models.get_model(cfg)
  params = models.init_params(model, cfg, jax.random.key(0))
  opt_state = train.init_opt_state(params, weight_decay=0.1, grad_clip=1.0, lock_image=False)
  rng = np.random.default_rng(0)
  data = jax.device_put(
      dict(
          image=rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32),
          text=rng.integers(0, cfg.text.vocab_size, (batch, cfg.text.max_len)).astype(np.int32),
          mask=np.ones(batch, bool),
      )
  )
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float((cost or {}).get("flops", float("nan")))
  params, opt_state, loss = compiled(params, opt_state, data, np.float32(1e-4))
  loss.block_until_ready()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    params, opt_state, loss = compiled(params, opt_state, data, np.float32(1e-4))
    loss.block_until_ready()
    times.append(time.perf_counter() - t)
  step_s = statistics.median(times)
  model_flops = 3 * forward_flops_per_example(cfg, batch)
  return dict(
      model=name,
      image_variant=cfg.image.variant,
      text_variant=cfg.text.variant,
      image_size=cfg.image_size,
      max_len=cfg.text.max_len,
      batch=batch,
      compile_s=compile_s,
      step_memory_bytes=need,
      timed_steps=steps,
      step_ms=1e3 * step_s,
      examples_per_s=batch / step_s,
      model_flops_per_example=model_flops,
      xla_step_flops_per_example=xla_flops / batch,
      achieved_flops_per_s=model_flops * batch / step_s,
  )


def b16_config():
  return ml_collections.ConfigDict(
      dict(
          image_size=224,
          image=dict(variant="B/16", pool_type="map"),
          text=dict(variant="B", vocab_size=32_000, max_len=64),
          out_dim=768,
          temperature_init=10.0,
          bias_init=-10.0,
          loss="sigmoid",
      )
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="embedded default only")
  parser.add_argument("--steps", type=int, default=20, help="timed steps (B/16 on CPU: 2)")
  parser.add_argument(
      "--b16-batch",
      type=int,
      default=64,
      help="largest B/16 batch to try; halved until the step fits in memory",
  )
  parser.add_argument("--out", default=RESULTS)
  args = parser.parse_args()
  if args.steps < 1:
    raise SystemExit("--steps must be >= 1")
  on_cpu = jax.default_backend() == "cpu"
  rate = matmul_rate()
  default = defaults.model()
  rows = [bench("default", default, defaults.colorswap_experiment().train.batch_size, args.steps)]
  if not args.quick:
    rows.append(
        bench(
            "B/16",
            b16_config(),
            args.b16_batch,
            min(args.steps, 2) if on_cpu else args.steps,
            fit_memory=True,
        )
    )
  for r in rows:
    r["mfu"] = r["achieved_flops_per_s"] / rate
  print(
      f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, measured matmul "
      f"{rate / 1e9:.1f} GFLOP/s (float32)"
  )
  print(
      f"{'model':8} {'batch':>5} {'step ms':>9} {'ex/s':>9} {'GFLOP/ex':>9} {'XLA GFLOP/ex':>12}"
      f" {'MFU':>6} {'compile s':>9}"
  )
  for r in rows:
    print(
        f"{r['model']:8} {r['batch']:5d} {r['step_ms']:9.1f} {r['examples_per_s']:9.1f}"
        f" {r['model_flops_per_example'] / 1e9:9.4g} {r['xla_step_flops_per_example'] / 1e9:12.4g}"
        f" {r['mfu']:6.1%} {r['compile_s']:9.1f} {r['step_memory_bytes'] / 2**30:6.2f}"
    )
  out = dict(
      device=jax.devices()[0].device_kind,
      backend=jax.default_backend(),
      device_count=jax.device_count(),
      host=platform.node(),
      matmul_flops_per_s=rate,
      rows=rows,
      free_memory_bytes=free_memory_bytes(),
  )
  files.write_text(args.out, json.dumps(out, indent=2))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  host_memory.reuse_freed_memory()  # as the command-line entry points do (mmal_jax/host_memory.py)
  main()
