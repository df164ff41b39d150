"""Test-wide setup: 8 host CPU devices so sharding and data-parallel tests run without a GPU."""

import os

# Must happen before JAX initializes its backends, which is why it lives here.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
