"""The pool-based (or streaming) active-learning experiment of the paper's Fig. 1, resumable.

A run (one strategy, one seed) is an explicit `RunState`: which run, which round, the model's
params, the annotation log and the records so far. Round 0 (`start`) evaluates the pretrained
model; every later round is two steps:

  queries = propose(exp, state)            # select only: no side effects
  answers = annotator.answer(queries)      # the simulated oracle, or a human annotation tool
  state = learn(exp, state, answers)       # retrain from the pretrained weights, re-embed, evaluate

`train_and_evaluate` drives every run of a config with the simulated oracle and saves the state
whole after each round (`save` / `restore`, orbax), so a killed run continues where it stopped with
identical results: all randomness is derived from (seed, round) with fold_in, never carried in a
generator.

A stream read in order from shards (config.data.name "webdataset": DataComp, `exp.streamed`) runs
the same rounds through `_stream_start` / `_stream_round` instead, in memory that does not grow
with the stream: round r reads buffer r - 1 (config.stream.buffer_size pairs, next in shard order)
and sees its images and texts unaligned; "ours" measures coverage against the last
config.stream.annotated_window pairs bought (0: all of them), whose data alone is kept; with
config.stream.continue_training each round trains from the previous round's params on its own new
pairs only (the paper's DataComp run: one epoch of batch 512 per buffer, from scratch with
config.model.initialization="scratch"; AdamW moments restart each round), else from the initial
params on the whole window. Evaluation is on the held-out split only (no margin analysis). A
resumed run re-reads the stream up to the saved round to refill the window.
"""

import contextlib
import dataclasses
import os
import time
from typing import Iterator, Optional

import jax
import numpy as np

from mmal_jax import acquisition
from mmal_jax import compiles
from mmal_jax import embeddings
from mmal_jax import evaluation
from mmal_jax import files
from mmal_jax import logs
from mmal_jax import models
from mmal_jax.annotation import unaligned as unaligned_lib
from mmal_jax.annotation.oracle import IMAGE, TEXT, Answers, Oracle, Queries
from mmal_jax.experiment import ConfigError  # pylint: disable=unused-import  # re-exported
from mmal_jax.experiment import Experiment
from mmal_jax.experiment import check_workdir
from mmal_jax.experiment import setup
from mmal_jax.training import checkpoints
from mmal_jax.training import train

_CHUNK = 1024  # items preprocessed + embedded at a time: bounds host memory on large pools


class RunError(RuntimeError):
  """A run that cannot go on (a full disk, diverged training, no intact checkpoint): reported as
  one line, exit code 2; the last saved round stays on disk and a rerun resumes from it."""


class Diverged(RunError):
  """Training in a round gave a NaN or inf loss or parameter (see `learn`)."""


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


@dataclasses.dataclass(frozen=True)
class RunState:
  """Where one (strategy, seed) run stands after a round; saved and restored whole.

  Attributes:
    run_index: the run, exp.runs[run_index] = (strategy, seed).
    round: the last round evaluated (0: the pretrained model).
    params: the model after that round (host arrays).
    log: every query of the run so far, with its answer.
    records: the metrics records of every round of every run so far, in order.
    embedded: derived, never saved: the round's embeddings (`_embed_state`), which the next
      `propose` reads; `restore` recomputes them bit-identically.
  """

  run_index: int
  round: int
  params: dict
  log: Answers
  records: tuple
  embedded: Optional[_Embedded] = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class _World:
  """A run's unaligned view of the pool and, when streaming, its buffers (int64 source rows)."""

  unaligned: unaligned_lib.Unaligned
  buffers: Optional[list]

  def buffer(self, rnd):
    # Round r sees buffer r - 1 of the stream (round 0, the pretrained model, is measured on
    # buffer 0).
    return None if self.buffers is None else self.buffers[max(rnd - 1, 0)]


def _world(exp, seed) -> _World:
  num_pairs = len(exp.source)
  config = exp.config
  unaligned = unaligned_lib.make_unaligned(
      num_pairs,
      seed=seed,
      missing_fraction=config.missing_fraction,
      missing_modality=config.missing_modality,
  )
  buffers = None
  if config.stream.buffer_size:
    buffers = list(unaligned_lib.stream_buffers(num_pairs, config.stream.buffer_size, seed=seed))
  return _World(unaligned, buffers)


def _keys(seed, rnd):
  """(select key, train key) of round `rnd`: the same for every strategy, so runs of one seed
  differ only by the pairs they bought."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), rnd)
  return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _visible(world, log, rnd):
  """Per modality, the unbought item ids the learner sees in round `rnd` (in its own order); when
  streaming, only the items of that round's buffer."""
  out, buffer_rows = [], world.buffer(rnd)
  for m in (IMAGE, TEXT):
    ids = world.unaligned.order[m]
    ids = ids[~log.bought(m, world.unaligned.num_items(m))[ids]]
    if buffer_rows is not None:
      ids = ids[np.isin(world.unaligned.rows[m][ids], buffer_rows)]
    out.append(ids)
  return out


def _margin_ids(exp, visible):
  # Learner's order is random, so a prefix is a uniform sample (bounds the quadratic cost on big
  # pools).
  return [v[: exp.config.eval.margin_max_items or None] for v in visible]


def _embed(exp, params, unaligned, modality, ids):
  """np.float32[len(ids), D]: embeddings of items `ids` of one modality under `params`."""
  rows = unaligned.rows[modality][np.asarray(ids, np.int64)]
  out = [np.zeros((0, models.embed_dim(exp.config.model)), np.float32)]
  batch = exp.config.embed_batch_size
  for start in range(0, len(rows), _CHUNK):
    sub = rows[start : start + _CHUNK]
    if modality == IMAGE:
      out.append(
          embeddings.embed_images(
              exp.model,
              params,
              exp.prep.images(exp.source.images(sub)),
              batch_size=batch,
              mesh=exp.mesh,
          )
      )
    else:
      out.append(
          embeddings.embed_texts(
              exp.model, params, exp.pool_tokens[sub], batch_size=batch, mesh=exp.mesh
          )
      )
  return np.concatenate(out)


def _embed_state(exp, state, world, visible):
  """_Embedded for `state` (its round's params, once its pairs are bought): the items of its
  margin analysis (`visible`, the items the round sees) and, unless it is the last round, the
  next round's visible items and annotated set. A pure function of (params, log, round), so a
  restored state gets bit-identical embeddings."""
  parts = [[ids] for ids in _margin_ids(exp, visible)]
  if state.round < exp.config.rounds:
    annotated = state.log.pairs()
    for m, ids in enumerate(_visible(world, state.log, state.round + 1)):
      parts[m] += [ids, annotated[m]]
  ids = tuple(np.unique(np.concatenate(p)) for p in parts)
  return _Embedded(
      ids, tuple(_embed(exp, state.params, world.unaligned, m, ids[m]) for m in (IMAGE, TEXT))
  )


def _evaluate(exp, params, embedded, unaligned, visible):
  """Test scores of `params`, plus the margin analysis (Table 3) on the `visible` unaligned
  items."""
  batch = exp.config.embed_batch_size
  zimg = embeddings.embed_images(
      exp.model, params, exp.prep.images(exp.test.images), batch_size=batch, mesh=exp.mesh
  )
  ztxt = embeddings.embed_texts(exp.model, params, exp.test_tokens, batch_size=batch, mesh=exp.mesh)
  scores = evaluation.split_scores(exp.test, zimg, ztxt)
  ids = _margin_ids(exp, visible)
  z = [embedded(m, ids[m]) for m in (IMAGE, TEXT)]
  rows = [
      _partner_rows(unaligned.partner[m], ids[m], ids[1 - m], unaligned.num_items(1 - m))
      for m in (IMAGE, TEXT)
  ]
  return {**scores, **evaluation.margin_analysis(z[IMAGE], z[TEXT], rows[IMAGE], rows[TEXT])}


def _partner_rows(partner, ids, other_ids, num_other):
  """int64[len(ids)]: for each item of `ids`, the row of its partner in `other_ids` (item ids of
  the other modality, which has num_other items), -1 when it has no partner (partner -1) or its
  partner is not among them: such an item can never be pseudo-aligned correctly."""
  position = np.full(num_other + 1, -1, np.int64)  # the last slot answers partner -1
  position[other_ids] = np.arange(len(other_ids))
  return position[partner[ids]]


def _measure(exp, state, same_as=None, **extra):
  """Embeds and evaluates `state`'s round: returns it with its embeddings and its record added.
  same_as: a record of another run whose scores this round has too (they are not recomputed)."""
  strategy, seed = exp.runs[state.run_index]
  world = _world(exp, seed)
  visible = _visible(world, state.log, state.round)
  embedded = _embed_state(exp, state, world, visible)
  spent = len(state.log)
  record = dict(
      strategy=strategy,
      seed=seed,
      round=state.round,
      num_queried=spent,
      num_pairs=len(state.log.pairs()[0]),
      percent_annotated=100.0 * spent / len(exp.source),
      **extra,
  )
  if same_as is None:
    record.update(_evaluate(exp, state.params, embedded, world.unaligned, visible))
  else:
    record.update({k: v for k, v in same_as.items() if k not in record})
  return dataclasses.replace(state, embedded=embedded, records=state.records + (record,))


def start(exp: Experiment, run_index: int, records=()) -> RunState:
  """Round 0 of run `run_index`: the pretrained model, nothing annotated, evaluated.

  `records`: those of the runs before it. Round 0 of every strategy of one seed is the same
  pretrained model on the same unaligned pool and test split, so when `records` holds another
  strategy's round 0 of this seed, its scores are reused rather than measured again (on the
  embedded default, evaluation is the largest cost after training: about 5 s a round).
  """
  state = RunState(
      run_index=run_index,
      round=0,
      params=exp.pretrained,
      log=Answers.empty(),
      records=tuple(records),
  )
  _, seed = exp.runs[run_index]
  earlier = [r for r in records if r["seed"] == seed and r["round"] == 0]
  return _measure(
      exp,
      state,
      same_as=earlier[0] if earlier else None,
      modality="none",
      acquisition_seconds=0.0,
      training_seconds=0.0,
      compile_seconds=0.0,
  )


def _select(exp, strategy, pools, annotated, picks, key):
  """acquisition.select of `picks` items under the config's B_C, metric and query modality;
  returns (selection, compiles.Stopwatch): seconds of steady-state work, the compiles of the first
  rounds recorded apart."""
  with compiles.Stopwatch() as watch:
    selection = acquisition.select(
        strategy,
        pools,
        annotated,
        batch_size=picks,
        coreset_size=max(exp.config.coreset_size, picks),
        key=key,
        metric=exp.config.metric,
        modality=exp.query_modality,
    )
  return selection, watch


def propose(exp: Experiment, state: RunState) -> Queries:
  """The queries of round state.round + 1, best first: selection only, no side effects.

  The strategy selects from the items the round sees, with the embeddings of state's params;
  `acquisition.picks_for_budget` says how many picks to ask for so that buying them in order
  (skipping picks revealed by an earlier answer) still spends config.per_round queries.
  """
  name, seed = exp.runs[state.run_index]
  strategy = acquisition.as_strategy(name)  # checked by experiment.check_config: a lookup here
  config, rnd = exp.config, state.round + 1
  world = _world(exp, seed)
  visible = _visible(world, state.log, rnd)
  embedded = state.embedded or _embed_state(
      exp, state, world, _visible(world, state.log, state.round)
  )
  pools = [embedded(m, visible[m]) for m in (IMAGE, TEXT)]
  annotated = [embedded(m, ids) for m, ids in enumerate(state.log.pairs())]
  select_key, _ = _keys(seed, rnd)
  picks = acquisition.picks_for_budget(
      strategy, config.per_round, [len(v) for v in visible], modality=exp.query_modality
  )
  selection, watch = _select(exp, strategy, pools, annotated, picks, select_key)
  modality, index = np.asarray(selection.modality), np.asarray(selection.index)
  item = np.array([visible[m][i] for m, i in zip(modality.tolist(), index.tolist())], np.int64)
  return Queries(
      modality=modality.astype(np.int64),
      item=item,
      budget=config.per_round,
      acquisition_seconds=watch.steady_seconds,
      compile_seconds=watch.compile_seconds,
  )


def _fit(exp, init, images, tokens, key, what, last_good):
  """train.fit from `init` on f32 `images` and int32 `tokens` under the config; returns (host
  params, compiles.Stopwatch of the fit). Raises Diverged naming `what` and the last good round."""
  try:
    with compiles.Stopwatch() as watch:
      params, _ = train.fit(
          exp.model,
          init,
          images,
          tokens,
          exp.config.train,
          key=key,
          loss=exp.config.model.loss,
          lock_image=exp.config.model.lock_image,
          mesh=exp.mesh,
      )
      params = jax.device_get(params)
  except train.Diverged as e:
    raise Diverged(
        f"training diverged in {what}: {e}; round {last_good} is the last good state"
    ) from None
  return params, watch


def learn(
    exp: Experiment,
    state: RunState,
    answers: Answers,
    *,
    acquisition_seconds: float = 0.0,
    compile_seconds: float = 0.0,
) -> RunState:
  """Round state.round + 1 given its `answers`: retrain from the pretrained weights on every pair
  bought so far, re-embed, evaluate; returns the next state (its record appended).

  acquisition_seconds and compile_seconds: the selection's steady-state and compile seconds
  (Queries), recorded with training's (its compile seconds added to compile_seconds).

  Raises ValueError if an answer is for an item that already left the pool, and Diverged
  (naming strategy, seed and round) if training gives a NaN or inf loss or parameter; `state` is
  left as it was.
  """
  strategy, seed = exp.runs[state.run_index]
  world = _world(exp, seed)
  for m in (IMAGE, TEXT):
    again = answers.item[answers.modality == m]
    if state.log.bought(m, world.unaligned.num_items(m))[again].any():
      raise ValueError(f"answers repeat items of modality {m} that were already bought")
  log = state.log.concat(answers)
  img_ids, txt_ids = log.pairs()
  _, train_key = _keys(seed, state.round + 1)
  rows = world.unaligned.rows
  params, watch = _fit(
      exp,
      exp.pretrained,
      exp.prep.images(exp.source.images(rows[IMAGE][img_ids])),
      exp.pool_tokens[rows[TEXT][txt_ids]],
      train_key,
      f"round {state.round + 1} of strategy {strategy!r}, seed {seed} ({len(img_ids)} pairs)",
      state.round,
  )
  last_good = state.round
  state = RunState(
      run_index=state.run_index,
      round=state.round + 1,
      params=params,
      log=log,
      records=state.records,
  )
  state = _measure(
      exp,
      state,
      modality=answers.modalities(),
      acquisition_seconds=acquisition_seconds,
      training_seconds=watch.steady_seconds,
      compile_seconds=compile_seconds + watch.compile_seconds,
  )
  # Finite but huge parameters (one step at a far too high learning rate) still give NaN or inf
  # embeddings, which the next round's acquisition could not use.
  bad = [
      name
      for m, name in ((IMAGE, "images"), (TEXT, "texts"))
      if not np.isfinite(state.embedded.z[m]).all()
  ]
  if bad:
    raise Diverged(
        f"training diverged in round {state.round} of strategy {strategy!r}, seed {seed} "
        f"({len(img_ids)} pairs): the trained model embeds {' and '.join(bad)} as NaN or inf "
        f"(peak config.train.learning_rate={float(exp.config.train.learning_rate):g}); the likely "
        "cause is a learning rate too high for this model; lower --config.train.learning_rate; "
        f"round {last_good} is the last good state"
    )
  return state


def simulated_annotator(exp: Experiment, state: RunState) -> Oracle:
  """The simulated oracle of `state`'s run, holding its log so far."""
  return Oracle(
      _world(exp, exp.runs[state.run_index][1]).unaligned.partner, log=state.log.to_json()
  )


def save(ckpt: checkpoints.Checkpointer, state: RunState):
  """Saves `state` whole (params as arrays, the rest as JSON) as step len(state.records)."""
  strategy_seed = dict(run_index=state.run_index, round=state.round)
  ckpt.save(
      len(state.records),
      state.params,
      dict(strategy_seed, log=state.log.to_json(), records=list(state.records)),
  )


def _restore_step(exp: Experiment, ckpt: checkpoints.Checkpointer, step: int) -> RunState:
  """The state saved as `step`; raises if it is unreadable or does not describe `exp`'s runs."""
  params, saved = ckpt.restore(step, exp.pretrained)
  state = RunState(
      run_index=int(saved["run_index"]),
      round=int(saved["round"]),
      params=jax.device_get(params),
      log=Answers.from_json(saved["log"]),
      records=tuple(saved["records"]),
  )
  # A step that reads but does not describe this config's runs is as damaged as a truncated one.
  if not (
      len(state.records) == step
      and 0 <= state.run_index < len(exp.runs)
      and 0 <= state.round <= exp.config.rounds
      and (state.records[-1]["strategy"], state.records[-1]["seed"], state.records[-1]["round"])
      == (*exp.runs[state.run_index], state.round)
  ):
    raise ValueError(f"its state (run {state.run_index}, round {state.round}) is inconsistent")
  return state


def _first_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def restore(exp: Experiment, ckpt: checkpoints.Checkpointer, *, report=None) -> Optional[RunState]:
  """The latest intact saved state, its embeddings recomputed as its round made them; None if
  nothing was saved.

  A damaged step (truncated or missing files, unreadable or inconsistent state) is set aside
  (renamed `<step>.damaged`, see Checkpointer.set_aside) and the next older one is used; `report`
  (e.g. print) gets one line per step set aside. Raises RunError, naming the damaged step's
  directory, if steps exist but none is intact.
  """
  damaged = []
  for step in ckpt.all_steps():
    try:
      state = _restore_step(exp, ckpt, step)
    except checkpoints.Damaged as e:
      damaged.append((step, str(e)))
      continue
    except Exception as e:  # pylint: disable=broad-except  # orbax raises many kinds on bad files
      damaged.append((step, _first_line(e)))
      continue
    for bad, why in damaged:
      moved = ckpt.set_aside(bad) if jax.process_index() == 0 else ckpt.step_path(bad)
      if report is not None:
        report(
            f"warning: checkpoint {ckpt.step_path(bad)} is damaged ({why}); moved to {moved}; "
            f"resuming from step {step}"
        )
    break
  else:
    if damaged:
      bad, why = damaged[0]
      raise RunError(
          f"checkpoint {ckpt.step_path(bad)} is damaged ({why}) and no older step is intact; "
          f"move {os.path.dirname(ckpt.step_path(bad))} away to start the runs over"
      )
    return None
  if state.round == exp.config.rounds or exp.streamed:  # over, or a stream (reopened lazily)
    return state
  world = _world(exp, exp.runs[state.run_index][1])
  return dataclasses.replace(
      state, embedded=_embed_state(exp, state, world, _visible(world, state.log, state.round))
  )


def _lock(stack: contextlib.ExitStack, workdir: str):
  """Holds `workdir`'s lock until `stack` closes (process 0 only: one process owns the work
  directory); raises ConfigError at once if another run holds it."""
  if jax.process_index() != 0:
    return
  try:
    stack.enter_context(files.exclusive(workdir))
  except files.Busy as e:
    raise ConfigError(
        f"workdir {e.strerror}: two runs must not share a work directory; wait for that one to "
        "end (rerunning then resumes or reports it) or pass another --workdir"
    ) from None
  except OSError as e:
    raise ConfigError(f"workdir {workdir} cannot be opened ({e.strerror}); pass another --workdir")


def _os_error(e: BaseException) -> Optional[OSError]:
  """The OSError behind `e` (orbax re-raises a failed write as other types), or None."""
  seen = set()
  while e is not None and id(e) not in seen:
    if isinstance(e, OSError):
      return e
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return None


_DISK_ERRORS = ("No space left", "Read-only file system", "Permission denied", "Disk quota")


def _persist(exp, ckpt, writer, state, workdir):
  """Saves `state` and rewrites the outputs; a full disk or an unwritable work directory is a
  RunError (the previous round's checkpoint stays intact, so a rerun resumes identically)."""
  try:
    save(ckpt, state)
    writer.write_outputs(state.records, plot=state.round == exp.config.rounds)
  except Exception as e:  # pylint: disable=broad-except  # orbax wraps OSError in other types
    os_error = _os_error(e)
    if os_error is None and not any(word in str(e) for word in _DISK_ERRORS):
      raise
    strategy, seed = exp.runs[state.run_index]
    why = (os_error and os_error.strerror) or next(w for w in _DISK_ERRORS if w in str(e))
    where = (os_error and os_error.filename) or workdir
    raise RunError(
        f"cannot write round {state.round} of {strategy!r} seed {seed} to {where} ({why}); "
        "free space or restore write access, then rerun the same command: it resumes from the "
        "last saved round with identical results"
    ) from None


def train_and_evaluate(config, workdir):
  """Runs (or resumes, or reports as finished) the experiment of `config` in `workdir`.

  Returns the list of per-round records. Raises ConfigError on bad input, before writing anything
  (a work directory in use by another run among them: each run holds a lock on its work directory,
  which the kernel drops when the process dies, even by SIGKILL), and RunError when the run cannot
  go on (full disk, diverged training, no intact checkpoint), keeping every round saved so far.
  """
  with contextlib.ExitStack() as stack:
    locked = os.path.isdir(workdir)
    if locked:  # refused at once, before any data or model is loaded
      _lock(stack, workdir)
    exp = setup(config, workdir)
    writer = logs.Writer(workdir, headline=exp.headline)
    try:
      if not locked and writer.active:
        os.makedirs(workdir, exist_ok=True)
        _lock(stack, workdir)
        check_workdir(workdir, exp.config_json)  # another run may have ended there meanwhile
      writer.write_config(exp.config_json)  # written last, once everything else checked out
      ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
    except OSError as e:
      raise ConfigError(f"workdir {workdir} is not writable: {e}") from None
    # Closing must not mask the error that ends a run (orbax's close can fail on a full disk).
    stack.callback(_close_quietly, ckpt)
    return _drive(exp, workdir, writer, ckpt)


def _close_quietly(ckpt):
  with contextlib.suppress(Exception):
    ckpt.close()


def _drive(exp, workdir, writer, ckpt):
  """The rounds of every run from the latest intact saved state on (see train_and_evaluate)."""
  config = exp.config
  total = len(exp.runs) * (config.rounds + 1)
  state = restore(exp, ckpt, report=writer.print)
  if state is not None and len(state.records) == total:
    writer.write_outputs(state.records)
    writer.print(
        f"{workdir} already holds this finished run ({total} rounds): nothing to do; see "
        f"{os.path.join(workdir, 'summary.md')}"
    )
    return list(state.records)
  began, rounds_here, stream = time.perf_counter(), 0, None
  while state is None or len(state.records) < total:
    if state is None or state.round == config.rounds:
      state = (_stream_start if exp.streamed else start)(
          exp, 0 if state is None else state.run_index + 1, () if state is None else state.records
      )
      stream = None
    elif exp.streamed:
      state, stream = _stream_round(exp, state, stream)
    else:
      queries = propose(exp, state)
      answers = simulated_annotator(exp, state).answer(queries)
      state = learn(
          exp,
          state,
          answers,
          acquisition_seconds=queries.acquisition_seconds,
          compile_seconds=queries.compile_seconds,
      )
    _persist(exp, ckpt, writer, state, workdir)
    rounds_here += 1
    writer.print(
        logs.progress_line(
            state.records[-1],
            headline=exp.headline,
            done=len(state.records),
            total=total,
            seconds_per_round=(time.perf_counter() - began) / rounds_here,
        )
    )
  writer.print(
      f"done: see {os.path.join(workdir, 'summary.md')} and curves.png, metrics.jsonl, "
      "tensorboard/ there"
  )
  return list(state.records)


# ------------------------------------------------------------------------------------------------
# Streams read in order from shards (exp.streamed; see the module docstring's last paragraph).


@dataclasses.dataclass(frozen=True)
class _Stream:
  """A streamed run's reader: the buffers still to come and the annotated window's data.

  buffers: iterator over exp.source.buffers(buffer_size), at the next round's buffer.
  positions: int64[K], the stream positions of the window's pairs (oldest first); images:
    uint8[K, S, S, 3] and tokens: int32[K, L], their data.
  """

  buffers: Iterator
  positions: np.ndarray
  images: np.ndarray
  tokens: np.ndarray


def _initial_params(exp, seed):
  """Round 0's params: the pretrained ones, or (model.initialization "scratch") random ones drawn
  from PRNGKey(seed)."""
  # experiment.load_model drew exp.pretrained from PRNGKey(0) for "scratch": seed 0 reuses it
  # (models.init_params compiles model.init afresh on every call: minutes on a loaded CPU).
  if exp.config.model.get("initialization", "pretrained") != "scratch" or seed == 0:
    return exp.pretrained
  return jax.device_get(models.init_params(exp.model, exp.config.model, jax.random.PRNGKey(seed)))


def _buffer_view(exp, seed, b):
  """The learner's unaligned view of buffer b (0-based) of a run with `seed`."""
  view_seed = int(np.random.SeedSequence([seed, b]).generate_state(1)[0])
  return unaligned_lib.make_unaligned(exp.config.stream.buffer_size, seed=view_seed)


def _next_buffer(exp, buffers, b):
  size, rounds = exp.config.stream.buffer_size, exp.config.rounds
  block = next(buffers, None)
  if block is None or len(block) < size:
    read = b * size + (0 if block is None else len(block))
    skipped = sum(exp.source.skipped.values())
    raise RunError(
        f"the stream {exp.source.pattern} ended after {read} usable pairs ({skipped} samples "
        f"skipped), but config.rounds={rounds} buffers of {size} need {rounds * size}; lower "
        "config.rounds or add shards"
    )
  return block


def _window_positions(exp, seed, log):
  """int64[K]: the stream positions of the pairs bought in `log` (global item ids: buffer b's
  item i is b * buffer_size + i), in query order."""
  size = exp.config.stream.buffer_size
  b, local = np.divmod(log.pairs()[IMAGE], size)
  out = np.zeros(len(b), np.int64)
  for k in np.unique(b).tolist():
    out[b == k] = k * size + _buffer_view(exp, seed, k).rows[IMAGE][local[b == k]]
  return out


def _open_stream(exp, seed, log, rounds_read):
  """The reader of a run that has read `rounds_read` buffers, its window refilled from them."""
  size = exp.config.stream.buffer_size
  buffers = iter(exp.source.buffers(size))
  positions = _window_positions(exp, seed, log)
  s, length = exp.prep.image_size, exp.config.model.text.max_len
  images = np.zeros((len(positions), s, s, 3), np.uint8)
  tokens = np.zeros((len(positions), length), np.int32)
  for b in range(rounds_read):
    block = _next_buffer(exp, buffers, b)
    hit = positions // size == b
    rows = positions[hit] % size
    images[hit] = block.images[rows]
    tokens[hit] = exp.prep.texts([block.texts[r] for r in rows.tolist()])
  return _Stream(buffers, positions, images, tokens)


def _embed_data(exp, params, modality, data):
  """np.float32[len(data), D]: embeddings of uint8 images or int32 tokens, _CHUNK at a time."""
  out = [np.zeros((0, models.embed_dim(exp.config.model)), np.float32)]
  batch = exp.config.embed_batch_size
  for start in range(0, len(data), _CHUNK):
    sub = data[start : start + _CHUNK]
    if modality == IMAGE:
      sub = exp.prep.images(sub)
      out.append(embeddings.embed_images(exp.model, params, sub, batch_size=batch, mesh=exp.mesh))
    else:
      out.append(embeddings.embed_texts(exp.model, params, sub, batch_size=batch, mesh=exp.mesh))
  return np.concatenate(out)


def _stream_scores(exp, params):
  """Held-out scores of `params` (recall@1, and zero-shot accuracies for a `LabeledPairs`)."""
  zimg = _embed_data(exp, params, IMAGE, exp.test.images)
  ztxt = _embed_data(exp, params, TEXT, exp.test_tokens)
  prompts = evaluation.prompt_texts(exp.test)
  zprompts = (
      _embed_data(exp, params, TEXT, np.asarray(exp.prep.texts(prompts))) if prompts else None
  )
  return evaluation.split_scores(exp.test, zimg, ztxt, zprompts), zimg


def _stream_record(exp, state, spent, pairs, **extra):
  strategy, seed = exp.runs[state.run_index]
  scores, zimg = _stream_scores(exp, state.params)
  config = exp.config
  record = dict(
      strategy=strategy,
      seed=seed,
      round=state.round,
      num_queried=spent,
      num_pairs=pairs,
      percent_annotated=100.0 * spent / (config.rounds * config.stream.buffer_size),
      **extra,
      **scores,
  )
  return dataclasses.replace(state, records=state.records + (record,)), zimg


def _stream_start(exp, run_index, records=()):
  """Round 0 of a streamed run: the initial model, evaluated; nothing read from the stream."""
  state = RunState(
      run_index=run_index,
      round=0,
      params=_initial_params(exp, exp.runs[run_index][1]),
      log=Answers.empty(),
      records=tuple(records),
  )
  state, _ = _stream_record(
      exp,
      state,
      0,
      0,
      modality="none",
      acquisition_seconds=0.0,
      training_seconds=0.0,
      compile_seconds=0.0,
  )
  return state


def _stream_round(exp, state, stream):
  """Round state.round + 1 of a streamed run: read its buffer, select, buy, train, evaluate.
  Returns (the next state, the reader at the next buffer); raises Diverged as `learn`."""
  name, seed = exp.runs[state.run_index]
  strategy = acquisition.as_strategy(name)
  config, rnd = exp.config, state.round + 1
  size, window = config.stream.buffer_size, config.stream.get("annotated_window", 0)
  stream = stream or _open_stream(exp, seed, state.log, state.round)
  block = _next_buffer(exp, stream.buffers, rnd - 1)
  view = _buffer_view(exp, seed, rnd - 1)
  tokens = np.asarray(exp.prep.texts(block.texts))
  data = (block.images, tokens)
  pools = [_embed_data(exp, state.params, m, data[m][view.rows[m][view.order[m]]]) for m in (0, 1)]
  annotated = [_embed_data(exp, state.params, m, (stream.images, stream.tokens)[m]) for m in (0, 1)]
  select_key, train_key = _keys(seed, rnd)
  picks = acquisition.picks_for_budget(
      strategy, config.per_round, [size, size], modality=exp.query_modality
  )
  selection, acquisition_watch = _select(exp, strategy, pools, annotated, picks, select_key)
  modality, index = np.asarray(selection.modality), np.asarray(selection.index)
  queries = Queries(
      modality=modality.astype(np.int64),
      item=np.where(modality == IMAGE, view.order[IMAGE][index], view.order[TEXT][index]),
      budget=config.per_round,
  )
  answers = Oracle(view.partner).answer(queries)
  rows = view.rows[IMAGE][answers.pairs()[IMAGE]]
  offset = (rnd - 1) * size
  stream = _Stream(
      stream.buffers,
      *(
          np.concatenate([old, new])[-window:] if window else np.concatenate([old, new])
          for old, new in (
              (stream.positions, offset + rows),
              (stream.images, block.images[rows]),
              (stream.tokens, tokens[rows]),
          )
      ),
  )
  log = state.log.concat(
      Answers(
          answers.modality,
          answers.item + offset,
          np.where(answers.partner >= 0, answers.partner + offset, -1),
      )
  )
  log = Answers(*(getattr(log, k)[log.partner >= 0] for k in ("modality", "item", "partner")))
  if window:
    log = Answers(*(getattr(log, k)[-window:] for k in ("modality", "item", "partner")))
  if config.stream.get("continue_training", False):
    init, images, texts = state.params, block.images[rows], tokens[rows]
  else:
    init, images, texts = _initial_params(exp, seed), stream.images, stream.tokens
  params, train_watch = _fit(
      exp,
      init,
      exp.prep.images(images),
      texts,
      train_key,
      f"round {rnd} of strategy {name!r}, seed {seed} ({len(rows)} new pairs)",
      state.round,
  )
  previous = state.records[-1]
  state, zimg = _stream_record(
      exp,
      RunState(state.run_index, rnd, params, log, state.records),
      previous["num_queried"] + len(answers),
      previous["num_pairs"] + len(rows),
      modality=answers.modalities(),
      acquisition_seconds=acquisition_watch.steady_seconds,
      training_seconds=train_watch.steady_seconds,
      compile_seconds=acquisition_watch.compile_seconds + train_watch.compile_seconds,
  )
  if not np.isfinite(zimg).all():
    raise Diverged(
        f"training diverged in round {rnd} of strategy {name!r}, seed {seed}: the trained model "
        "embeds the held-out images as NaN or inf; lower --config.train.learning_rate; round "
        f"{rnd - 1} is the last good state"
    )
  return state, stream
