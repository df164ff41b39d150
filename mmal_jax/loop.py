"""The pool-based (or streaming) active-learning experiment of the paper's Fig. 1, resumable.

For each (strategy, seed) run: round 0 evaluates the pretrained model; each later round embeds the
visible unaligned items and the annotated ones with the current model, selects `per_round` items,
buys their partners from the oracle, retrains from the pretrained weights on every pair bought so
far, and evaluates. After every round the loop state (run, round, oracle log, model, all records)
is checkpointed with orbax, so a killed run continues where it stopped with identical results: all
randomness is derived from (seed, round) with fold_in, never carried in a generator.
"""
import dataclasses
import json
import os
import time

import jax
import ml_collections
import numpy as np

from mmal_jax import acquisition
from mmal_jax import embeddings
from mmal_jax import evaluation
from mmal_jax import files
from mmal_jax import logs
from mmal_jax import models
from mmal_jax.data import Pairs
from mmal_jax.data import load_dataset
from mmal_jax.data import preprocess
from mmal_jax.data import unaligned as unaligned_lib
from mmal_jax.models import two_towers
from mmal_jax.oracle import IMAGE, TEXT, Oracle
from mmal_jax.training import checkpoints
from mmal_jax.training import train

MODALITY_NAMES = ("image", "text")
_CHUNK = 1024  # items preprocessed + embedded at a time: bounds host memory on large pools


class ConfigError(ValueError):
  """Bad input (config, data, checkpoint, work directory): reported as one line, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything validated and loaded before the work directory is touched."""
  config: ml_collections.ConfigDict
  config_json: str
  model: two_towers.Model
  pretrained: dict
  prep: preprocess.Preprocessor
  pool: Pairs
  pool_tokens: np.ndarray  # int32[N, L]
  test_images: np.ndarray
  test_tokens: np.ndarray
  runs: tuple  # ((strategy, seed), ...)

  @property
  def retrieval(self):
    return self.config.data.name == "coco"

  @property
  def headline(self):
    return "i2t" if self.retrieval else "group"


def _config_json(config):
  return json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True, indent=2)


def strategies_of(config):
  """config.strategies as names; "ours,random" (what --config.strategies=ours,random gives) is split."""
  return tuple(name.strip() for item in config.strategies for name in str(item).split(",") if name.strip())


def _check_config(config):
  """Field checks that need no data: unknown strategy, non-positive sizes, bad fractions."""
  strategies = strategies_of(config)
  unknown = [s for s in strategies if s not in acquisition.STRATEGIES]
  if unknown or not strategies:
    raise ConfigError(f"config.strategies={list(strategies)} has unknown strategies {unknown}; "
                      f"use some of {list(acquisition.STRATEGIES)}")
  if len(set(strategies)) != len(strategies):
    raise ConfigError(f"config.strategies={list(strategies)} repeats a strategy")
  seeds = tuple(config.seeds)
  if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
    raise ConfigError(f"config.seeds={list(seeds)} must be distinct ints >= 0, e.g. --config.seeds=0,1,2,3")
  for name in ("per_round", "rounds", "coreset_size", "train.epochs", "train.batch_size"):
    value = config
    for part in name.split("."):
      value = value[part]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.{name}={value!r} must be an int >= 1")
  if config.coreset_size < config.per_round:
    raise ConfigError(f"config.coreset_size={config.coreset_size} < config.per_round={config.per_round}: the "
                      "batch is picked from the coreset; use e.g. coreset_size = 2 * per_round")
  if not 0.0 <= config.missing_fraction < 1.0:
    raise ConfigError(f"config.missing_fraction={config.missing_fraction} must lie in [0, 1)")
  if config.stream.buffer_size and config.stream.buffer_size < config.coreset_size:
    raise ConfigError(f"config.stream.buffer_size={config.stream.buffer_size} < config.coreset_size="
                      f"{config.coreset_size}: a buffer must hold at least one coreset")


def _check_budget(config, num_pairs):
  """The rounds must fit in the pool (or the stream), leaving a coreset to choose from at the end."""
  budget = config.per_round * config.rounds
  smallest = num_pairs - int(round(config.missing_fraction * num_pairs))  # items of the thinner modality
  if config.stream.buffer_size:
    buffers = num_pairs // config.stream.buffer_size
    if config.rounds > buffers:
      raise ConfigError(f"config.rounds={config.rounds} > {buffers} buffers of {config.stream.buffer_size} "
                        f"in a pool of {num_pairs} pairs; lower rounds or stream.buffer_size")
  elif budget + config.coreset_size - config.per_round > smallest:
    raise ConfigError(f"budget per_round * rounds = {budget} (plus coreset_size - per_round = "
                      f"{config.coreset_size - config.per_round} left to choose from in the last round) "
                      f"exceeds the pool of {smallest} items per modality; lower config.rounds or "
                      "config.per_round")


def _check_workdir(workdir, config_json):
  """Refuses a workdir that is a file, not writable, or made by another config (before any work)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"workdir {workdir} exists and is not a directory; pass a directory with --workdir")
  parent = os.path.abspath(workdir)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
    raise ConfigError(f"workdir {workdir} is not writable ({parent} is not a writable directory); "
                      "pass another --workdir")
  saved = os.path.join(workdir, "config.json")
  if os.path.exists(saved):
    with open(saved) as f:
      if json.load(f) != json.loads(config_json):
        raise ConfigError(f"workdir {workdir} holds a run of a different config ({saved}); "
                          "pass a new --workdir or rerun with the same config")
  elif os.path.isdir(workdir) and os.listdir(workdir):
    raise ConfigError(f"workdir {workdir} is not empty and has no config.json; pass a new or empty --workdir")


def _load_model(model_config):
  try:
    model = models.get_model(model_config)
    # Shapes only: the checkpoint supplies the values, so nothing needs compiling.
    init = jax.eval_shape(lambda key: models.init_params(model, model_config, key), jax.random.PRNGKey(0))
  except ValueError as e:
    raise ConfigError(f"config.model: {e}") from None
  try:
    pretrained = two_towers.load(init, model_config.init, model_config)
  except Exception as e:  # pylint: disable=broad-except  # any unreadable file is bad input here
    raise ConfigError(f"cannot read init checkpoint config.model.init={model_config.init!r}: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  return model, jax.device_get(pretrained)


def prepare(config, workdir):
  """Validates everything and loads model and data; raises ConfigError; writes nothing."""
  _check_config(config)
  config_json = _config_json(config)
  _check_workdir(workdir, config_json)
  try:
    prep = preprocess.Preprocessor.from_config(config.model)
    pool, test = load_dataset(config.data, image_size=prep.image_size)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  _check_budget(config, len(pool.texts))
  model, pretrained = _load_model(config.model)
  if not config.data.name == "coco" and len(test.texts) % 2:
    raise ConfigError(f"the ColorSwap test split has {len(test.texts)} pairs; groups need an even number")
  runs = tuple((s, seed) for s in strategies_of(config) for seed in config.seeds)
  return Experiment(config=config, config_json=config_json, model=model, pretrained=pretrained, prep=prep,
                    pool=pool, pool_tokens=np.asarray(prep.texts(pool.texts)),
                    test_images=np.asarray(test.images), test_tokens=np.asarray(prep.texts(test.texts)), runs=runs)


def _embed(exp, params, unaligned, modality, ids):
  """np.float32[len(ids), D]: embeddings of items `ids` of one modality under `params`."""
  rows = unaligned.rows[modality][np.asarray(ids, np.int64)]
  out = [np.zeros((0, exp.config.model.out_dim), np.float32)]
  for start in range(0, len(rows), _CHUNK):
    sub = rows[start:start + _CHUNK]
    if modality == IMAGE:
      out.append(embeddings.embed_images(exp.model, params, exp.prep.images(exp.pool.images[sub]),
                                         batch_size=exp.config.embed_batch_size))
    else:
      out.append(embeddings.embed_texts(exp.model, params, exp.pool_tokens[sub],
                                        batch_size=exp.config.embed_batch_size))
  return np.concatenate(out)


@dataclasses.dataclass(frozen=True)
class _Embedded:
  """Embeddings under one round's params of every item that round's evaluation and the next
  round's acquisition read, so that each item is embedded once per round, not once per use.

  ids: per modality, the sorted item ids; z: per modality, f32[len(ids), D] in that order.
  """
  ids: tuple
  z: tuple

  def __call__(self, modality, ids):
    """f32[len(ids), D]: the embeddings of items `ids` (each of them in self.ids[modality])."""
    return self.z[modality][np.searchsorted(self.ids[modality], ids)]


def _buffer(buffers, rnd):
  # Round r sees buffer r - 1 of the stream (round 0, the pretrained model, is measured on buffer 0).
  return None if buffers is None else buffers[max(rnd - 1, 0)]


def _margin_ids(exp, visible):
  # Learner's order is random, so a prefix is a uniform sample (bounds the quadratic cost on big pools).
  return [v[:exp.config.eval.margin_max_items or None] for v in visible]


def _embed_round(exp, params, unaligned, oracle, buffers, rnd, visible):
  """_Embedded for round `rnd`'s params, once its pairs are bought: the items of its margin
  analysis (from `visible`, the items it sees) and, unless it is the last round, round rnd + 1's
  visible items and annotated set.

  A run resumed before round rnd + 1 calls this again with the restored params and oracle, which
  gives the same ids in the same order and so bit-identical embeddings.
  """
  parts = [[ids] for ids in _margin_ids(exp, visible)]
  if rnd < exp.config.rounds:
    annotated = oracle.pairs()
    for m, ids in enumerate(_visible(unaligned, oracle, _buffer(buffers, rnd + 1))):
      parts[m] += [ids, annotated[m]]
  ids = tuple(np.unique(np.concatenate(p)) for p in parts)
  return _Embedded(ids, tuple(_embed(exp, params, unaligned, m, ids[m]) for m in (IMAGE, TEXT)))


def _evaluate(exp, params, embedded, unaligned, visible):
  """Test scores of `params`, plus the margin analysis (Table 3) on the `visible` unaligned items."""
  batch = exp.config.embed_batch_size
  zimg = embeddings.embed_images(exp.model, params, exp.prep.images(exp.test_images), batch_size=batch)
  ztxt = embeddings.embed_texts(exp.model, params, exp.test_tokens, batch_size=batch)
  if exp.retrieval:
    scores = evaluation.recall_at_1(zimg, ztxt)
  else:
    scores = evaluation.colorswap_scores(evaluation.colorswap_similarity(zimg, ztxt))
  ids = _margin_ids(exp, visible)
  z = [embedded(m, ids[m]) for m in (IMAGE, TEXT)]
  rows = []
  for m in (IMAGE, TEXT):
    position = np.full(unaligned.num_items(1 - m) + 1, -1, np.int64)  # last slot: partner -1
    position[ids[1 - m]] = np.arange(len(ids[1 - m]))
    rows.append(position[unaligned.partner[m][ids[m]]])
  return {**scores, **evaluation.margin_analysis(z[IMAGE], z[TEXT], rows[IMAGE], rows[TEXT])}


def _visible(unaligned, oracle, buffer_rows):
  """Per modality, the unbought item ids the learner sees (in its own order); with a stream
  buffer (int64 source rows), only the items of those rows."""
  out = []
  for m in (IMAGE, TEXT):
    ids = unaligned.order[m]
    ids = ids[~oracle.bought(m)[ids]]
    if buffer_rows is not None:
      ids = ids[np.isin(unaligned.rows[m][ids], buffer_rows)]
    out.append(ids)
  return out


def _keys(seed, rnd):
  """(select key, train key) of round `rnd`: the same for every strategy, so runs of one seed
  differ only by the pairs they bought."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), rnd)
  return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _buy(oracle, selection, visible, budget):
  """Queries the picks in their priority order, one at a time, until `budget` queries are spent.

  A pick that an earlier query of this round revealed (as its partner) is known to be aligned and
  is skipped unpaid. Every strategy lists its picks best first, so for single-modality strategies
  this is exactly their first `budget` picks. Returns the modalities queried, e.g. "image+text".
  """
  spent, used = 0, set()
  for m, i in zip(np.asarray(selection.modality), np.asarray(selection.index)):
    if spent == budget:
      break
    item = visible[m][i]
    if oracle.is_bought(m, item):
      continue
    oracle.query(int(m), [item])
    spent += 1
    used.add(MODALITY_NAMES[m])
  return "+".join(sorted(used))


def _acquire_and_train(exp, strategy, seed, rnd, unaligned, oracle, visible, embedded):
  """Steps 1-4 of a round: select from `visible` with the previous round's embeddings, buy,
  retrain; returns (params, record fields)."""
  config = exp.config
  pools = [embedded(m, visible[m]) for m in (IMAGE, TEXT)]
  annotated = [embedded(m, ids) for m, ids in enumerate(oracle.pairs())]
  select_key, train_key = _keys(seed, rnd)
  # Picks spanning both modalities ("uncertainty") may hold an item and its partner; buying the
  # first reveals the second, which is then skipped, so ask for spares to still spend per_round.
  batch = config.per_round
  if strategy == "uncertainty":
    batch = min(2 * batch, sum(len(v) for v in visible))
  start = time.perf_counter()
  selection = acquisition.select(strategy, pools, annotated, batch_size=batch,
                                 coreset_size=max(config.coreset_size, batch), key=select_key,
                                 metric=config.metric)
  acquisition_seconds = time.perf_counter() - start
  chosen = _buy(oracle, selection, visible, config.per_round)
  img_ids, txt_ids = oracle.pairs()
  start = time.perf_counter()
  params, _ = train.fit(exp.model, exp.pretrained, exp.prep.images(exp.pool.images[unaligned.rows[IMAGE][img_ids]]),
                        exp.pool_tokens[unaligned.rows[TEXT][txt_ids]], config.train, key=train_key,
                        loss=config.model.loss, lock_image=config.model.lock_image)
  params = jax.device_get(params)
  return params, dict(modality=chosen, acquisition_seconds=acquisition_seconds,
                      training_seconds=time.perf_counter() - start)


def _run(exp, strategy, seed, rounds, oracle_log, params):
  """Yields (round, params, oracle, record) for rounds `rounds` of one (strategy, seed) run."""
  config = exp.config
  num_pairs = len(exp.pool.texts)
  unaligned = unaligned_lib.make_unaligned(num_pairs, seed=seed, missing_fraction=config.missing_fraction,
                                           missing_modality=config.missing_modality)
  oracle = Oracle(unaligned.partner, log=oracle_log)
  buffers = None
  if config.stream.buffer_size:
    buffers = list(unaligned_lib.stream_buffers(num_pairs, config.stream.buffer_size, seed=seed))
  embedded = None
  for rnd in rounds:
    extra = dict(modality="none", acquisition_seconds=0.0, training_seconds=0.0)
    if rnd > 0:
      if embedded is None:  # Resumed: embed as the previous round did, with its restored params.
        embedded = _embed_round(exp, params, unaligned, oracle, buffers, rnd - 1,
                                _visible(unaligned, oracle, _buffer(buffers, rnd - 1)))
      params, extra = _acquire_and_train(exp, strategy, seed, rnd, unaligned, oracle,
                                         _visible(unaligned, oracle, _buffer(buffers, rnd)), embedded)
    visible = _visible(unaligned, oracle, _buffer(buffers, rnd))
    embedded = _embed_round(exp, params, unaligned, oracle, buffers, rnd, visible)
    scores = _evaluate(exp, params, embedded, unaligned, visible)
    record = dict(strategy=strategy, seed=seed, round=rnd, num_queried=oracle.spent,
                  num_pairs=len(oracle.pairs()[0]), percent_annotated=100.0 * oracle.spent / num_pairs,
                  **extra, **scores)
    yield rnd, params, oracle, record


def train_and_evaluate(config, workdir):
  """Runs (or resumes, or reports as finished) the experiment of `config` in `workdir`.

  Returns the list of per-round records. Raises ConfigError on bad input, before writing anything.
  """
  exp = prepare(config, workdir)
  config_path = os.path.join(workdir, "config.json")
  try:
    os.makedirs(workdir, exist_ok=True)
    if not os.path.exists(config_path):  # written last, once everything else checked out
      files.write_text(config_path, exp.config_json)
  except OSError as e:
    raise ConfigError(f"workdir {workdir} is not writable: {e}") from None
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  per_run = config.rounds + 1
  total = len(exp.runs) * per_run
  # Rounds are recorded in order, one record each, so len(records) says where to continue; the
  # RNG needs no saving since every key is fold_in(seed, round).
  records, log, params = [], None, exp.pretrained
  step = ckpt.latest_step()
  if step is not None:
    params, state = ckpt.restore(step, exp.pretrained)
    params, records, log = jax.device_get(params), state["records"], state["log"]
  if len(records) == total:
    logs.write_outputs(workdir, records, headline=exp.headline)
    print(f"{workdir} already holds this finished run ({total} rounds): nothing to do; see "
          f"{os.path.join(workdir, 'summary.md')}", flush=True)
    ckpt.close()
    return records
  started, rounds_here = time.perf_counter(), 0
  for run_index in range(len(records) // per_run, len(exp.runs)):
    first = len(records) - run_index * per_run  # > 0 only when resuming inside this run
    if first == 0:
      log, params = None, exp.pretrained
    strategy, seed = exp.runs[run_index]
    for rnd, params, oracle, record in _run(exp, strategy, seed, range(first, per_run), log, params):
      records.append(record)
      log = {k: v.tolist() for k, v in oracle.log.items()}
      ckpt.save(len(records), params, dict(strategy=strategy, seed=seed, round=rnd, log=log, records=records))
      logs.write_outputs(workdir, records, headline=exp.headline, plot=rnd == config.rounds)
      rounds_here += 1
      print(logs.progress_line(record, headline=exp.headline, done=len(records), total=total,
                               seconds_per_round=(time.perf_counter() - started) / rounds_here), flush=True)
  ckpt.close()
  print(f"done: see {os.path.join(workdir, 'summary.md')} and curves.png, metrics.jsonl, tensorboard/ there",
        flush=True)
  return records
