"""Compile seconds, measured apart from steady-state work.

The first round of a run pays JAX's tracing, lowering and XLA compiles (or persistent-cache loads)
of every jitted program it meets: seconds of one-off cost that would read as the method's cost
(measured on the default run: "ours" round 1 trained in 7 s, the other strategies in about 1 s).
JAX reports each of those steps as a time span (jax.monitoring); `Stopwatch` takes the union of
the spans inside its block, so nested traces (a jitted function traced inside another) count once:

  with compiles.Stopwatch() as watch:
    ...
  watch.seconds          # wall seconds of the block
  watch.compile_seconds  # of which tracing, lowering and compiling
  watch.steady_seconds   # the rest: the work itself
"""

import threading
import time

import jax

_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_lock = threading.Lock()
_spans = []  # (start, end) wall times of compile steps while a Stopwatch is open
_open = [0]  # Stopwatches open (spans are kept only then)
_installed = []


def _listener(event, start, end, **kwargs):
  del kwargs
  if event in _EVENTS:
    with _lock:
      if _open[0]:
        _spans.append((start, end))


def union_seconds(spans, begin, end):
  """Total length of the union of intervals `spans`, clipped to [begin, end]."""
  total, reach = 0.0, begin
  for s, e in sorted(spans):
    s, e = max(s, reach), min(e, end)
    if e > s:
      total += e - s
      reach = e
  return total


class Stopwatch:
  """Wall seconds of a block and the part of them spent tracing and compiling (see module doc)."""

  seconds = compile_seconds = steady_seconds = 0.0

  def __enter__(self):
    with _lock:
      if not _installed:
        jax.monitoring.register_event_time_span_listener(_listener)
        _installed.append(True)
      _open[0] += 1
    self._begin = time.time()
    return self

  def __exit__(self, *exc):
    end = time.time()
    with _lock:
      spans = list(_spans)
      _open[0] -= 1
      if not _open[0]:
        _spans.clear()
    self.seconds = end - self._begin
    self.compile_seconds = min(union_seconds(spans, self._begin, end), self.seconds)
    self.steady_seconds = self.seconds - self.compile_seconds
    return False
