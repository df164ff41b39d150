"""CLIP (softmax loss) on the embedded ColorSwap-like pool: the same experiment as siglip_colorswap."""
from configs import common


def get_config():
  return common.colorswap_experiment("softmax")
