"""LiT: the image tower stays at its pretrained weights; only the text tower (and t, b) learn."""

from mmal_jax import defaults


def get_config():
  config = defaults.colorswap_experiment("sigmoid")
  config.model.lock_image = True
  return config
