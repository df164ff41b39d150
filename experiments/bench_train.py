"""Train-step throughput of the two-tower models, with model FLOPs and MFU.

  python -m experiments.bench_train                 # embedded default + B/16 (B/16: batch 8 on CPU)
  python -m experiments.bench_train --quick         # embedded default only (~1 min)
  python -m experiments.bench_train --b16-batch 64 --steps 10   # on an accelerator

For each model: one jitted `train.train_step` (SigLIP loss, AdamW) on a fixed random batch on the
default device, one untimed compile-and-run, then the median of --steps timed steps.
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

from configs import common
from mmal_jax import files
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
      best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
  return best


def _encoder_flops(n, width, depth, mlp_dim):
  # Per layer: QKV + output projections 8 n w^2, scores and mixing 4 n^2 w, MLP 4 n w mlp.
  return depth * (8 * n * width ** 2 + 4 * n * n * width + 4 * n * width * mlp_dim)


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


def bench(name, cfg, batch, steps):
  model = models.get_model(cfg)
  params = models.init_params(model, cfg, jax.random.key(0))
  opt_state = train.init_opt_state(params, weight_decay=0.1, grad_clip=1.0, lock_image=False)
  rng = np.random.default_rng(0)
  data = jax.device_put(dict(
      image=rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32),
      text=rng.integers(0, cfg.text.vocab_size, (batch, cfg.text.max_len)).astype(np.int32),
      mask=np.ones(batch, bool)))
  hp = dict(model=model, loss="sigmoid", lock_image=False, weight_decay=0.1, grad_clip=1.0)
  t = time.perf_counter()
  compiled = train.train_step.lower(params, opt_state, data, np.float32(1e-4), **hp).compile()
  compile_s = time.perf_counter() - t
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
  return dict(model=name, image_variant=cfg.image.variant, text_variant=cfg.text.variant,
              image_size=cfg.image_size, max_len=cfg.text.max_len, batch=batch,
              compile_s=compile_s, step_ms=1e3 * step_s, examples_per_s=batch / step_s,
              model_flops_per_example=model_flops, xla_step_flops_per_example=xla_flops / batch,
              achieved_flops_per_s=model_flops * batch / step_s)


def b16_config():
  return ml_collections.ConfigDict(dict(
      image_size=224, image=dict(variant="B/16", pool_type="map"),
      text=dict(variant="B", vocab_size=32_000, max_len=64), out_dim=768,
      temperature_init=10.0, bias_init=-10.0, loss="sigmoid"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="embedded default only")
  parser.add_argument("--steps", type=int, default=20, help="timed steps (B/16 on CPU: 2)")
  parser.add_argument("--b16-batch", type=int, default=None,
                      help="B/16 batch; default 64 on an accelerator, 8 on CPU")
  parser.add_argument("--out", default=RESULTS)
  args = parser.parse_args()
  if args.steps < 1:
    raise SystemExit("--steps must be >= 1")
  on_cpu = jax.default_backend() == "cpu"
  rate = matmul_rate()
  default = common.model()
  rows = [bench("default", default, common.colorswap_experiment().train.batch_size, args.steps)]
  if not args.quick:
    batch = args.b16_batch or (8 if on_cpu else 64)
    rows.append(bench("B/16", b16_config(), batch, min(args.steps, 2) if on_cpu else args.steps))
  for r in rows:
    r["mfu"] = r["achieved_flops_per_s"] / rate
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, measured matmul "
        f"{rate / 1e9:.1f} GFLOP/s (float32)")
  print(f"{'model':8} {'batch':>5} {'step ms':>9} {'ex/s':>9} {'GFLOP/ex':>9} {'XLA GFLOP/ex':>12}"
        f" {'MFU':>6} {'compile s':>9}")
  for r in rows:
    print(f"{r['model']:8} {r['batch']:5d} {r['step_ms']:9.1f} {r['examples_per_s']:9.1f}"
          f" {r['model_flops_per_example'] / 1e9:9.4g} {r['xla_step_flops_per_example'] / 1e9:12.4g}"
          f" {r['mfu']:6.1%} {r['compile_s']:9.1f}")
  out = dict(device=jax.devices()[0].device_kind, backend=jax.default_backend(),
             device_count=jax.device_count(), host=platform.node(),
             matmul_flops_per_s=rate, rows=rows,
             note="shared, busy machine: timings are noisy")
  files.write_text(args.out, json.dumps(out, indent=2))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
