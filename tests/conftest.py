"""Test-wide setup: 8 host CPU devices so sharding and data-parallel tests run without a GPU, and
the command-line entry points' malloc setting, so that in-process training runs as they do."""

import os

from mmal_jax import host_memory

# Must happen before JAX initializes its backends, which is why it lives here.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
host_memory.reuse_freed_memory()
