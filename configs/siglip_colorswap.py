"""The embedded default: SigLIP (sigmoid loss), ColorSwap-like synthetic pool, four strategies.

  python -m mmal_jax.main --config=configs/siglip_colorswap.py
"""
from configs import common


def get_config():
  return common.colorswap_experiment("sigmoid")
