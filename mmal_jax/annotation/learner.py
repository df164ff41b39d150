"""The model side of an annotation project: embed its items, pick a round's queries with their
suggestions, retrain on the confirmed pairs. The same pieces as the experiments' loop (loop.py):
`experiment.load_model`, `pp.preprocess`, `embeddings`, `acquisition.select` with
`picks_for_budget`, and `train.fit` from the pretrained weights; only the data differ (the user's
files instead of a paired dataset whose alignment is hidden).
"""

import dataclasses
import time

import jax
import numpy as np
import tqdm

from mmal_jax import acquisition
from mmal_jax import embeddings
from mmal_jax import evaluation
from mmal_jax import experiment
from mmal_jax import files
from mmal_jax import mesh as mesh_lib
from mmal_jax import models
from mmal_jax.annotation.oracle import Queries
from mmal_jax.annotation.unaligned import IMAGE, TEXT
from mmal_jax.data import images as images_lib
from mmal_jax.models import npz
from mmal_jax.models import two_towers
from mmal_jax.pp import preprocess
from mmal_jax.training import train

_CHUNK = 1024  # items decoded + embedded at a time: bounds host memory on large projects


@dataclasses.dataclass(frozen=True)
class Learner:
  """The project's model (built once per command from the stored config)."""

  config: object
  model: object
  pretrained: dict
  prep: preprocess.Preprocessor
  mesh: object

  @classmethod
  def of(cls, config) -> "Learner":
    """Raises experiment.ConfigError (one line) on a bad model config or checkpoint."""
    try:
      prep = preprocess.Preprocessor.from_config(config.model)
      mesh = mesh_lib.data_mesh()
    except ValueError as e:
      raise experiment.ConfigError(str(e)) from None
    model, pretrained = experiment.load_model(config.model)
    return cls(config, model, pretrained, prep, mesh)

  def params(self, checkpoint):
    """The params of a round: the pretrained ones (checkpoint None) or a saved .npz."""
    if checkpoint is None:
      return self.pretrained
    return jax.device_get(two_towers.load(self.pretrained, checkpoint))

  def inputs(self, modality, sources):
    """Model inputs of items given by their sources (image paths or texts)."""
    if modality == IMAGE:
      records = [(s, "", s) for s in sources]
      return self.prep.images(images_lib.decode_images(records, self.prep.image_size))
    return np.asarray(self.prep.texts(list(sources)))

  def embed(self, params, modality, sources, *, progress=False) -> np.ndarray:
    """np.float32[len(sources), D], L2-normalized, in chunks (a progress bar on stderr)."""
    kind = ("images", "texts")[modality]
    out = [np.zeros((0, self.model_dim), np.float32)]
    batch = self.config.embed_batch_size
    with tqdm.tqdm(
        total=len(sources), desc=f"embedding {kind}", unit=" items", disable=not progress
    ) as bar:
      for start in range(0, len(sources), _CHUNK):
        x = self.inputs(modality, sources[start : start + _CHUNK])
        fn = embeddings.embed_images if modality == IMAGE else embeddings.embed_texts
        out.append(fn(self.model, params, x, batch_size=batch, mesh=self.mesh))
        bar.update(len(x))
    return np.concatenate(out)

  @property
  def model_dim(self) -> int:
    return models.embed_dim(self.config.model)

  def fit(self, images, texts, *, round_):
    """Params trained from the pretrained weights on the pairs (image paths, texts) with the
    experiments' `fit`; the shuffling key is derived from (seed, round)."""
    key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), round_)
    params, _ = train.fit(
        self.model,
        self.pretrained,
        self.inputs(IMAGE, images),
        self.inputs(TEXT, texts),
        self.config.train,
        key=key,
        loss=self.config.model.loss,
        lock_image=self.config.model.lock_image,
        mesh=self.mesh,
    )
    return jax.device_get(params)


def propose(config, z, pools, annotated, *, key_round) -> Queries:
  """One acquisition round of a project `config` over the unaligned items, with each pick's top-k
  suggestions.

  z: per modality, f32[N_m, D] embeddings of every item; pools: per modality, int64 item ids
  still unaligned; annotated: per modality, int64 ids of the confirmed pairs' items.
  Returns Queries whose `candidates` int64[P, top_k] are the pool items of the other modality
  most similar to each pick (best first, -1 where fewer are left).
  """
  strategy = acquisition.as_strategy(config.strategy)
  query_modality = experiment.QUERY_MODALITIES[config.query_modality]
  sizes = [len(p) for p in pools]
  picks = acquisition.picks_for_budget(strategy, config.per_round, sizes, modality=query_modality)
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), key_round)
  begin = time.perf_counter()
  selection = acquisition.select(
      strategy,
      [z[m][pools[m]] for m in (IMAGE, TEXT)],
      [z[m][annotated[m]] for m in (IMAGE, TEXT)],
      batch_size=picks,
      # Near the end of a pool, a coreset as large as what is left.
      coreset_size=max(min(config.coreset_size, *sizes), picks),
      key=key,
      metric=config.metric,
      modality=query_modality,
  )
  seconds = time.perf_counter() - begin
  modality = np.asarray(selection.modality, np.int64)
  item = np.array([pools[m][i] for m, i in zip(modality, np.asarray(selection.index))], np.int64)
  candidates = np.full((len(item), config.top_k), -1, np.int64)
  for m in (IMAGE, TEXT):
    mine = np.flatnonzero(modality == m)
    other = pools[1 - m]
    if len(mine) and len(other):
      sim = z[m][item[mine]] @ z[1 - m][other].T
      k = min(config.top_k, len(other))
      top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
      candidates[mine, :k] = other[top]
  return Queries(modality, item, config.per_round, seconds, candidates=candidates)


def save_embeddings(path, z):
  """Both modalities' embeddings, atomically (a reader or a kill never sees half a file)."""
  with files.atomic_write(path) as f:
    np.savez(f, image=z[IMAGE], text=z[TEXT])


def load_embeddings(path):
  with np.load(path) as data:
    return data["image"], data["text"]


def save_params(path, params):
  npz.save_big_vision_npz(params, path)  # atomic


def test_scores(z, test_pairs) -> dict:
  """Retrieval recall@1 both ways on the held-out known pairs (image ids, text ids)."""
  return evaluation.recall_at_1(z[IMAGE][test_pairs[0]], z[TEXT][test_pairs[1]])
