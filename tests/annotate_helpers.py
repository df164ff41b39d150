"""A user's unpaired files made from the embedded synthetic data, with the ground truth kept aside
to answer queries as a perfect annotator would (tests of mmal_jax.annotate)."""

import csv
import os

import numpy as np
import PIL.Image

from mmal_jax.data import synthetic


def write_unpaired(directory, *, num_groups, seed=0, num_known=0, num_test=0, cache_dir=None):
  """Writes images/<name>.png and texts.csv (columns id,text) of the synthetic pool's pairs in
  two independent random orders, plus known.csv / test.csv (image_id,text_id) for the first
  num_known / next num_test pairs. Returns (images dir, texts path, truth) where truth maps each
  image's user id to its text's user id and back."""
  pool = synthetic.colorswap_like(
      seed=seed, num_train_groups=num_groups, num_test_groups=2, cache_dir=cache_dir
  ).train
  rng = np.random.default_rng(seed)
  n = len(pool)
  image_names = [f"photo_{k:05d}.png" for k in rng.permutation(n)]
  text_ids = [f"t{k:05d}" for k in rng.permutation(n)]
  os.makedirs(os.path.join(directory, "images"), exist_ok=True)
  for i in range(n):
    PIL.Image.fromarray(pool.images[i]).save(os.path.join(directory, "images", image_names[i]))
  order = rng.permutation(n)  # the texts file lists the texts in its own order
  texts = os.path.join(directory, "texts.csv")
  with open(texts, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "text"])
    for i in order:
      writer.writerow([text_ids[i], pool.texts[i]])
  for name, rows in (
      ("known.csv", range(num_known)),
      ("test.csv", range(num_known, num_known + num_test)),
  ):
    with open(os.path.join(directory, name), "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["image_id", "text_id"])
      for i in rows:
        writer.writerow([image_names[i], text_ids[i]])
  truth = {image_names[i]: text_ids[i] for i in range(n)}
  truth.update({text_ids[i]: image_names[i] for i in range(n)})
  return os.path.join(directory, "images"), texts, truth
