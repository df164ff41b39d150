"""glibc malloc settings under which XLA:CPU reuses host memory instead of faulting it in afresh.

XLA:CPU allocates each execution's temporary buffers on the host (about 80 MB for one training
step of the embedded default) and frees them when the step ends. Under glibc's defaults a block
that large is mmap-ed and unmapped again, or lives in a per-thread arena that is trimmed, so the
next step touches fresh pages: on the 2-core CI machine 17,000 minor page faults per step, 60 ms of
kernel time in a 125 ms step. With one arena, no mmap-ed blocks and no trimming, freed blocks stay
in the heap and are reused: 88-94 ms per step, 3 ms of it in the kernel (141 ms before, by
experiments/bench_train.py --quick).
Only where memory comes from changes, never a value: results are bit-identical.

The settings apply to allocator threads created later, and XLA starts its thread pools when the
first JAX computation runs, so `reuse_freed_memory()` must come before that: the command-line
entry points call it first; in a notebook, call it before anything else. The cost: memory that
was freed is kept for reuse rather than returned to the system, so the process's resident size
stays at its peak, and blocks of different sizes fragment the one heap: the 12-round streaming run
of the README's "Scale" section peaks at 1.81 GB instead of 1.26 GB (and does not grow with the
stream: 1.56 GB over 48 rounds).
"""

import ctypes
import os

# glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
# Variables by which a user sets glibc's malloc; any of them means they chose, and we leave it.
_USER_SETTINGS = (
    "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "LD_PRELOAD",  # e.g. tcmalloc or jemalloc, which manage their own memory
)


def reuse_freed_memory() -> bool:
  """Sets glibc malloc to one arena, no mmap-ed blocks and no trimming; returns whether it did.

  Does nothing (returns False) where the C library is not glibc, or where the environment already
  sets malloc (one of GLIBC_TUNABLES, MALLOC_ARENA_MAX, MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_,
  MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ or LD_PRELOAD): set one of them, e.g.
  MALLOC_ARENA_MAX=8, to keep glibc's defaults.
  """
  if any(name in os.environ for name in _USER_SETTINGS):
    return False
  try:
    process = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
    mallopt = process.mallopt
    process.gnu_get_libc_version  # pylint: disable=pointless-statement  # glibc only
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  # mallopt's value is an int: the largest threshold is 2 GiB - 1, so a freed top of the heap
  # beyond that is still returned to the system.
  return all(
      mallopt(option, value) == 1
      for option, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
  )
