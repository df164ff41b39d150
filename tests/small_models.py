"""The small two-tower config shared by the model, checkpoint and training tests."""

import ml_collections


def small_config(**kw):
  """mu-sized towers at 16x16 images and 6 tokens: every compile stays cheap."""
  cfg = dict(
      image_size=16,
      image=dict(variant="mu/8", pool_type="map"),
      text=dict(variant="mu", vocab_size=50, max_len=6),
      out_dim=16,
      temperature_init=10.0,
      bias_init=-10.0,
      loss="sigmoid",
  )
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)
