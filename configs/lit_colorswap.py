"""LiT: the image tower stays at its pretrained weights; only the text tower (and t, b) learn."""
from configs import common


def get_config():
  config = common.colorswap_experiment("sigmoid")
  config.model.lock_image = True
  return config
