"""The embedded default: SigLIP (sigmoid loss), ColorSwap-like synthetic pool, four strategies.

python -m mmal_jax.main --config=configs/siglip_colorswap.py
python -m mmal_jax.main --config=configs/siglip_colorswap.py:PATH.npz  # another synthetic checkpoint

PATH.npz: a checkpoint written by experiments/pretrain_synthetic.py (its .json, which holds the
architecture, and _vocab.txt beside it), e.g. a variant of experiments/pretrain_sweep.py.
"""

from mmal_jax import defaults


def get_config(checkpoint=None):
  return defaults.colorswap_experiment("sigmoid", checkpoint or None)
