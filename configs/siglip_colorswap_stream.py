"""Streaming (Section 4.2) on the embedded pool: 5 buffers of 280 pairs, 70 bought from each
(25%, as Appendix C.2), what is not picked is gone; then 20% of the pool is annotated."""

from mmal_jax import defaults


def get_config():
  config = defaults.colorswap_experiment("sigmoid")
  config.stream.buffer_size = 280
  config.rounds = 5
  return config
