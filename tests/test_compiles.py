"""Compile seconds apart from steady-state work (mmal_jax/compiles.py)."""

import jax
import jax.numpy as jnp
import pytest

from mmal_jax import compiles


def test_union_of_spans_counts_nested_and_overlapping_spans_once():
  # [0, 4] holds the nested [1, 2]; [3, 6] overlaps it; [8, 9] is apart; clipped to [0.5, 8.5].
  spans = [(1.0, 2.0), (0.0, 4.0), (3.0, 6.0), (8.0, 9.0)]
  assert compiles.union_seconds(spans, 0.5, 8.5) == pytest.approx(5.5 + 0.5)
  assert compiles.union_seconds([], 0.0, 1.0) == 0.0


def test_first_call_compiles_and_the_second_does_not():
  f = jax.jit(lambda x: jnp.tanh(x) * 3.0 + 1.0)
  x = jnp.arange(7.0)
  with compiles.Stopwatch() as first:
    f(x).block_until_ready()
  with compiles.Stopwatch() as second:
    f(x).block_until_ready()
  assert first.compile_seconds > 0
  assert second.compile_seconds == 0.0
  for w in (first, second):
    assert w.steady_seconds >= 0
    assert w.compile_seconds + w.steady_seconds == pytest.approx(w.seconds)
