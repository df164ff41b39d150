"""The embedded default: SigLIP (sigmoid loss), ColorSwap-like synthetic pool, four strategies.

python -m mmal_jax.main --config=configs/siglip_colorswap.py
"""

from mmal_jax import defaults


def get_config():
  return defaults.colorswap_experiment("sigmoid")
