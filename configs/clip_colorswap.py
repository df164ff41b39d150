"""CLIP (softmax loss) on the embedded ColorSwap-like pool: the same experiment as siglip_colorswap."""

from mmal_jax import defaults


def get_config():
  return defaults.colorswap_experiment("softmax")
