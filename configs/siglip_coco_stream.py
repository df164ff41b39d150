"""MS-COCO streaming (Section 4.2): buffers of 1024 pairs, B = 256 bought from each.

Needs COCO on disk (nothing is downloaded):
  python -m mmal_jax.main --config=configs/siglip_coco_stream.py \
    --config.data.root=/data/coco --config.model.init=/ckpt/siglip.npz [--config.model...]
data.format "json": root holds annotations/captions_{train,val}2017.json and train2017/, val2017/;
data.format "tfds": root is the tfds data_dir holding coco_captions. Evaluation: recall@1 on val.
"""

from mmal_jax import defaults


def get_config():
  config = defaults.colorswap_experiment("sigmoid")
  # data.root: required, on the command line; the splits default to the format's (json:
  # train2017 / val2017, tfds: train / val).
  config.data.update(name="coco", format="json", max_test_items=5000)
  config.stream.buffer_size = 1024
  config.per_round = 256
  config.coreset_size = 512
  config.rounds = 10
  config.train.update(epochs=10, batch_size=256, weight_decay=0.2)
  config.eval.margin_max_items = 4096  # the margin analysis is quadratic in the items it sees
  return config
