"""Public setup of an active-learning experiment: check a config, then build its data, model,
pretrained parameters and device mesh, without writing anything.

Used alike by `main` (through `loop.train_and_evaluate`), the scripts in experiments/ and notebooks:

  from mmal_jax import experiment
  exp = experiment.setup(config)            # raises experiment.ConfigError (one line) on bad input
  exp.pool, exp.test, exp.model, exp.pretrained, exp.prep, exp.mesh, exp.runs

What is scored comes from what the test split is (`evaluation.split_scores`): `ColorSwapGroups`
by group scores, plain `Pairs` by recall@1; nothing here names a dataset.
"""

import dataclasses
import json
import os
from typing import Optional, Union

import jax
import ml_collections
import numpy as np

from mmal_jax import acquisition
from mmal_jax import evaluation
from mmal_jax import mesh as mesh_lib
from mmal_jax import models
from mmal_jax.data import InMemory
from mmal_jax.data import Pairs
from mmal_jax.data import Source
from mmal_jax.data import load_dataset
from mmal_jax.models import two_towers
from mmal_jax.pp import preprocess

# config.query_modality -> the `modality` argument of acquisition.select.
QUERY_MODALITIES = dict(auto=None, random="random", image=0, text=1)


class ConfigError(ValueError):
  """Bad input (config, data, checkpoint, work directory): reported as one line, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything validated and loaded before the work directory is touched.

  Attributes:
    config: the checked config; config_json: its canonical JSON (what config.json holds).
    model, pretrained: the two-tower module and its pretrained params (host arrays).
    prep: model-input preprocessing (images -> f32 in [-1, 1], captions -> int32 tokens).
    pool: the paired pool the learner sees unaligned; pool_tokens: int32[N, L], its tokens; both
      None for a stream read from shards (data.name "webdataset").
    source: the pool as a random-access `Source`, which the loop reads items through; for a
      stream read from shards, the `WebDataset` (read in order, one buffer a round).
    test: the test split (`ColorSwapGroups` or `Pairs`); test_tokens: int32[N_test, L].
    mesh: the data-parallel device mesh of training and embedding.
    query_modality: None, "random" or a modality index (config.query_modality resolved).
    runs: ((strategy, seed), ...), in the order they run.
  """

  config: ml_collections.ConfigDict
  config_json: str
  model: two_towers.Model
  pretrained: dict
  prep: preprocess.Preprocessor
  pool: Optional[Pairs]
  pool_tokens: Optional[np.ndarray]
  source: Source
  test: Pairs
  test_tokens: np.ndarray
  mesh: jax.sharding.Mesh
  query_modality: Optional[Union[str, int]]
  runs: tuple

  @property
  def streamed(self) -> bool:
    """Whether the pool is a stream read in order from shards (loop: the streaming rounds)."""
    return self.pool is None

  @property
  def headline(self) -> str:
    """The score named first in progress lines and summaries ("group" or "i2t")."""
    return evaluation.headline(self.test)


def config_json(config) -> str:
  """The canonical JSON of a config (sorted keys): what config.json holds and resume compares."""
  return json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True, indent=2)


def strategies_of(config) -> tuple:
  """config.strategies as names; "ours,random" (what --config.strategies=ours,random gives) is
  split."""
  return tuple(
      name.strip() for item in config.strategies for name in str(item).split(",") if name.strip()
  )


def check_config(config):
  """Field checks that need no data: unknown strategy, non-positive sizes, bad fractions. The
  strategy names are checked here, once (a "module:function" path is imported now, see
  acquisition.as_strategy); downstream, resolving them again is a lookup that cannot fail."""
  strategies = strategies_of(config)
  if not strategies:
    raise ConfigError(
        f"config.strategies is empty; use some of {list(acquisition.STRATEGIES)} or "
        "'module:function' paths to your own"
    )
  for name in strategies:
    try:
      acquisition.as_strategy(name)
    except ValueError as e:
      raise ConfigError(f"config.strategies: {e}") from None
  if len(set(strategies)) != len(strategies):
    raise ConfigError(f"config.strategies={list(strategies)} repeats a strategy")
  seeds = tuple(config.seeds)
  if (
      not seeds
      or len(set(seeds)) != len(seeds)
      or not all(isinstance(s, int) and s >= 0 for s in seeds)
  ):
    raise ConfigError(
        f"config.seeds={list(seeds)} must be distinct ints >= 0, e.g. " "--config.seeds=0,1,2,3"
    )
  for name in ("per_round", "rounds", "coreset_size", "train.epochs", "train.batch_size"):
    value = config
    for part in name.split("."):
      value = value[part]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.{name}={value!r} must be an int >= 1")
  if config.coreset_size < config.per_round:
    raise ConfigError(
        f"config.coreset_size={config.coreset_size} < config.per_round="
        f"{config.per_round}: the batch is picked from the coreset; use e.g. "
        "coreset_size = 2 * per_round"
    )
  if not 0.0 <= config.missing_fraction < 1.0:
    raise ConfigError(f"config.missing_fraction={config.missing_fraction} must lie in [0, 1)")
  if config.stream.buffer_size and config.stream.buffer_size < config.coreset_size:
    raise ConfigError(
        f"config.stream.buffer_size={config.stream.buffer_size} < "
        f"config.coreset_size={config.coreset_size}: a buffer must hold at least one "
        "coreset"
    )
  initialization = config.model.get("initialization", "pretrained")
  if initialization not in ("pretrained", "scratch"):
    raise ConfigError(
        f"config.model.initialization={initialization!r} is not known; use 'pretrained' (load "
        "config.model.init) or 'scratch' (random)"
    )
  query_modality = config.get("query_modality", "auto")
  if query_modality not in QUERY_MODALITIES:
    raise ConfigError(
        f"config.query_modality={query_modality!r} is not known; use one of "
        f"{list(QUERY_MODALITIES)}"
    )


def check_budget(config, num_pairs: int):
  """The rounds must fit in the pool (or the stream), leaving a coreset to choose from at the
  end."""
  budget = config.per_round * config.rounds
  # Items of the thinner modality:
  smallest = num_pairs - int(round(config.missing_fraction * num_pairs))
  if config.stream.buffer_size:
    buffers = num_pairs // config.stream.buffer_size
    if config.rounds > buffers:
      raise ConfigError(
          f"config.rounds={config.rounds} > {buffers} buffers of "
          f"{config.stream.buffer_size} in a pool of {num_pairs} pairs; lower rounds "
          "or stream.buffer_size"
      )
  elif budget + config.coreset_size - config.per_round > smallest:
    raise ConfigError(
        f"budget per_round * rounds = {budget} (plus coreset_size - per_round = "
        f"{config.coreset_size - config.per_round} left to choose from in the last "
        f"round) exceeds the pool of {smallest} items per modality; lower "
        "config.rounds or config.per_round"
    )


def check_workdir(workdir: str, canonical_json: str):
  """Refuses a workdir that is a file, not writable, or made by another config (before any work)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(
        f"workdir {workdir} exists and is not a directory; pass a directory with " "--workdir"
    )
  parent = os.path.abspath(workdir)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
    raise ConfigError(
        f"workdir {workdir} is not writable ({parent} is not a writable "
        "directory); pass another --workdir"
    )
  saved = os.path.join(workdir, "config.json")
  if os.path.exists(saved):
    with open(saved) as f:
      if json.load(f) != json.loads(canonical_json):
        raise ConfigError(
            f"workdir {workdir} holds a run of a different config ({saved}); "
            "pass a new --workdir or rerun with the same config"
        )
  elif os.path.isdir(workdir) and os.listdir(workdir):
    raise ConfigError(
        f"workdir {workdir} is not empty and has no config.json; pass a new or " "empty --workdir"
    )


def load_model(model_config):
  """(two_towers.Model, pretrained params on the host) of config.model; raises ConfigError."""
  try:
    model = models.get_model(model_config)
    # Shapes only: the checkpoint supplies the values, so nothing needs compiling.
    init = jax.eval_shape(
        lambda key: models.init_params(model, model_config, key), jax.random.PRNGKey(0)
    )
  except ValueError as e:
    raise ConfigError(f"config.model: {e}") from None
  if model_config.get("initialization", "pretrained") == "scratch":  # random, from PRNGKey(0)
    return model, jax.device_get(models.init_params(model, model_config, jax.random.PRNGKey(0)))
  try:
    pretrained = two_towers.load(init, model_config.init, model_config)
  except Exception as e:  # pylint: disable=broad-except  # any unreadable file is bad input here
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ConfigError(
        f"cannot read init checkpoint config.model.init={model_config.init!r}: " f"{first}"
    ) from None
  return model, jax.device_get(pretrained)


def setup(config, workdir: Optional[str] = None) -> Experiment:
  """Checks `config` (and `workdir`, when given), then loads data, model and pretrained params.

  Raises ConfigError with a one-line message on bad input; writes nothing (the synthetic data
  cache aside, which is only a speed-up).
  """
  check_config(config)
  canonical = config_json(config)
  if workdir is not None:
    check_workdir(workdir, canonical)
  try:
    mesh = mesh_lib.data_mesh(config.get("num_devices", 0))
    prep = preprocess.Preprocessor.from_config(config.model)
    pool, test = load_dataset(config.data, image_size=prep.image_size)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  streamed = not isinstance(pool, Pairs)  # a stream read in order from shards
  if streamed and not config.stream.buffer_size:
    raise ConfigError(
        f"config.data.name={config.data.name!r} is a stream read in order from shards; set "
        "config.stream.buffer_size (e.g. 2048)"
    )
  if not streamed:
    check_budget(config, len(pool))
  model, pretrained = load_model(config.model)
  runs = tuple((s, seed) for s in strategies_of(config) for seed in config.seeds)
  return Experiment(
      config=config,
      config_json=canonical,
      model=model,
      pretrained=pretrained,
      prep=prep,
      pool=None if streamed else pool,
      pool_tokens=None if streamed else np.asarray(prep.texts(pool.texts)),
      source=pool if streamed else InMemory(pool),
      test=test,
      test_tokens=np.asarray(prep.texts(test.texts)),
      mesh=mesh,
      query_modality=QUERY_MODALITIES[config.get("query_modality", "auto")],
      runs=runs,
  )
