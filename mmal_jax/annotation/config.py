"""The default config of an annotation project (`python -m mmal_jax.annotate init`).

`init` stores the config in the project's database; every later verb reads it from there, so a
project keeps one model, one training recipe and one acquisition setting for its whole life.
Override fields at init, e.g. --config.train.epochs=10 --config.model.init=/path/siglip.npz (a
big_vision two-tower .npz with the matching model.* sizes, see README "Custom checkpoints").
"""

import ml_collections

from mmal_jax import defaults


def get_config():
  config = ml_collections.ConfigDict()
  config.model = defaults.model("sigmoid")  # the embedded checkpoint unless model.init is set
  # The experiments' recipe (defaults.colorswap_experiment): retrain from the pretrained weights
  # on every confirmed pair after each round.
  config.train = defaults.colorswap_experiment().train
  config.strategy = "ours"  # any acquisition strategy or "module:function" path
  config.per_round = 50  # queries per `next`
  config.coreset_size = 100  # B_C of "ours" / "coreset"; at least per_round
  config.metric = "euclidean"
  config.query_modality = "auto"  # auto: the strategy's own rule; or "random", "image", "text"
  config.top_k = 5  # the model's suggestions shown with each query
  config.embed_batch_size = 256
  config.seed = 0
  config.lease_seconds = 600.0  # how long a query served to one annotator is withheld from others
  return config
