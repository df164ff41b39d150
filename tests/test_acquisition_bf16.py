"""Pools stored as bfloat16 (storage="bfloat16"): half the bytes, float32 arithmetic. Checked
against Algorithm 1 in NumPy float64 on the same bfloat16-rounded values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmal_jax import acquisition

N, DIM, K, B, BC = 600, 24, 15, 8, 40


def _unit(rng, rows):
  x = rng.standard_normal((rows, DIM))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _bf16(x):
  """float64 copy of x rounded to bfloat16, as the state stores it."""
  return np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64)


def _ours_f64(pools, annotated):
  """Algorithm 1 in float64: (modality, B picks, the smallest gap between the winner and the
  runner-up of any k-center step or of the margin order)."""
  caches = [((p[:, None] - a[None]) ** 2).sum(-1).min(1) for p, a in zip(pools, annotated)]
  m = int(np.argmax([c.max() for c in caches]))
  x, cache, picks, gaps = pools[m], caches[m].copy(), [], []
  for _ in range(BC):
    top = np.sort(cache)[-2:]
    gaps.append(top[1] - top[0])
    j = int(np.argmax(cache))
    picks.append(j)
    cache = np.minimum(cache, ((x - x[j]) ** 2).sum(1))
    cache[j] = -1
  s = np.sort(x[picks] @ pools[1 - m].T, axis=1)
  margin = s[:, -1] - s[:, -2]
  order = np.argsort(margin, kind="stable")
  gaps.append(np.diff(np.sort(margin)[: B + 1]).min())
  return m, np.array(picks)[order[:B]], min(gaps)


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_ours_matches_float64_on_rounded_values(seed):
  rng = np.random.default_rng(seed)
  pools, annotated = [_unit(rng, N), _unit(rng, N)], [_unit(rng, K), _unit(rng, K)]
  state = acquisition.init_state(pools, annotated, storage="bfloat16")
  assert state.padded_pools[0].dtype == jnp.bfloat16
  assert (
      state.padded_pools[0].nbytes * 2
      == acquisition.init_state(pools, annotated).padded_pools[0].nbytes
  )
  got = acquisition.select_from_state(
      "ours", state, batch_size=B, coreset_size=BC, key=jax.random.key(0)
  )
  # The cache from the annotated set was computed from the rounded pool too, so the reference
  # rounds both pools (annotated items enter as float32, as the state keeps them).
  rounded = [_bf16(p) for p in pools]
  m, picks, gap = _ours_f64(rounded, [a.astype(np.float64) for a in annotated])
  # float32 arithmetic on the stored values errs by ~1e-6 on these unit-norm distances; every
  # decision of this draw is separated by more, so the picks must be exactly the reference's.
  assert gap > 1e-5, gap
  assert int(got.modality[0]) == m
  np.testing.assert_array_equal(got.index, picks)


def test_bf16_kcenter_differs_from_float32_only_by_rounding():
  """Through `select`: bfloat16 storage picks what float32 storage picks on the pools rounded to
  bfloat16 (the rounding is the only difference); an unknown storage is one line."""
  rng = np.random.default_rng(3)
  pools, annotated = [_unit(rng, N), _unit(rng, N)], [_unit(rng, K), _unit(rng, K)]
  kw = dict(batch_size=B, coreset_size=BC, key=jax.random.key(0))
  bf = acquisition.select("ours", pools, annotated, storage="bfloat16", **kw)
  ref = acquisition.select("ours", [_bf16(p).astype(np.float32) for p in pools], annotated, **kw)
  np.testing.assert_array_equal(bf.index, ref.index)  # the rounding is the only difference
  with pytest.raises(ValueError, match="storage='float16' is unknown"):
    acquisition.select("ours", pools, annotated, storage="float16", **kw)
