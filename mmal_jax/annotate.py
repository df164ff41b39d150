r"""Annotate your own unaligned images and texts: queries out, answers in, state in SQLite.

  python -m mmal_jax.annotate init   --project=DIR --images=FOLDER_OR_LIST --texts=FILE \
                                     [--pairs=known.csv] [--test_pairs=test.csv] [--config.x=...]
  python -m mmal_jax.annotate next   --project=DIR [--strategy=ours] [--budget=50]
  python -m mmal_jax.annotate ingest --project=DIR FILE   (Label Studio export .json, .csv, .jsonl)
  python -m mmal_jax.annotate serve  --project=DIR [--port=8080]   (the annotation page)
  python -m mmal_jax.annotate train  --project=DIR
  python -m mmal_jax.annotate status --project=DIR
  python -m mmal_jax.annotate export --project=DIR [--out=DIR/export]

The project directory holds project.sqlite (items, queries, answers, rounds), embeddings/ and
checkpoints/ (one .npz per round), batches/<n>/ (each `next`'s query files) and export/. Bad input
prints one line `error: ...` and exits with status 2; nothing is half-written.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
from ml_collections import config_flags

from mmal_jax import experiment
from mmal_jax import files
from mmal_jax import host_memory
from mmal_jax.annotation import answers as answers_lib
from mmal_jax.annotation import batch_files
from mmal_jax.annotation import export as export_lib
from mmal_jax.annotation import items as items_lib
from mmal_jax.annotation import labelstudio
from mmal_jax.annotation import learner as learner_lib
from mmal_jax.annotation import project as project_lib
from mmal_jax.annotation.human import ProjectAnnotator
from mmal_jax.annotation.unaligned import IMAGE, TEXT
from mmal_jax.data.pairs import DataError

VERBS = ("init", "next", "ingest", "serve", "train", "status", "export")
_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "annotation", "config.py")

_PROJECT = None
_CONFIG = None
_IMAGES = None
_TEXTS = None
_PAIRS = None
_TEST_PAIRS = None
_STRATEGY = None
_BUDGET = None
_URL_PREFIX = None
_OUT = None
_SHARD_SIZE = None
_HOST = None
_PORT = None


def define_flags():
  """The command line's flags, on absl's global FLAGS; defined when run as a script, so that
  importing this module next to other command-line modules (main, acquire) defines none."""
  global _PROJECT, _CONFIG, _IMAGES, _TEXTS, _PAIRS, _TEST_PAIRS, _STRATEGY, _BUDGET, _URL_PREFIX
  global _OUT, _SHARD_SIZE, _HOST, _PORT
  if _PROJECT is not None:  # already defined
    return
  _PROJECT = flags.DEFINE_string("project", None, "The project directory.")
  _CONFIG = config_flags.DEFINE_config_file(
      "config",
      _DEFAULT_CONFIG,
      "init: the project config (default: the embedded model).",
      lock_config=True,
  )
  _IMAGES = flags.DEFINE_string("images", None, "init: a folder of images or a list file of paths.")
  _TEXTS = flags.DEFINE_string(
      "texts", None, "init: texts, .txt (a line each), .csv (id,text), .jsonl."
  )
  _PAIRS = flags.DEFINE_string(
      "pairs", None, "init: known pairs to train on, CSV image_id,text_id."
  )
  _TEST_PAIRS = flags.DEFINE_string(
      "test_pairs", None, "init: known pairs held out to score each round (status' curve)."
  )
  _STRATEGY = flags.DEFINE_string(
      "strategy", None, "next: the acquisition strategy (default: config)."
  )
  _BUDGET = flags.DEFINE_integer(
      "budget", None, "next: queries in the batch (default: config.per_round)."
  )
  _URL_PREFIX = flags.DEFINE_string(
      "image_url_prefix",
      labelstudio.DEFAULT_IMAGE_URL_PREFIX,
      "next: Label Studio image URL prefix.",
  )
  _OUT = flags.DEFINE_string("out", None, "export: output folder (default: <project>/export).")
  _SHARD_SIZE = flags.DEFINE_integer("shard_size", 1000, "export: pairs per webdataset shard.")
  _HOST = flags.DEFINE_string("host", "127.0.0.1", "serve: the address to listen on.")
  _PORT = flags.DEFINE_integer("port", 8080, "serve: the port (0: any free one, printed).")


ERRORS = (
    project_lib.ProjectError,
    project_lib.AnswerError,
    DataError,
    experiment.ConfigError,
)


class UsageError(ValueError):
  pass


def _say(message):
  print(message, flush=True)


# -- verbs ---------------------------------------------------------------------------------------


def _resolve_pairs(path, lookups, taken):
  """[(image idx, text idx)] of a pairs CSV; ids resolved, an item in two pairs refused."""
  out = []
  for image_id, text_id, where in items_lib.read_pairs(path):
    ids = []
    for m, value in ((IMAGE, image_id), (TEXT, text_id)):
      if value not in lookups[m]:
        raise DataError(
            f"{where}: unknown {('image', 'text')[m]} id {value!r}; use ids of --images/--texts"
        )
      idx = lookups[m][value]
      if idx in taken[m]:
        raise DataError(f"{where}: {value!r} is in two known pairs; an item is paired once")
      taken[m].add(idx)
      ids.append(idx)
    out.append(tuple(ids))
  return out


def init(directory, config, images, texts, pairs=None, test_pairs=None):
  if not images or not texts:
    raise UsageError("init needs --images=FOLDER_OR_LIST and --texts=FILE")
  if os.path.exists(os.path.join(directory, project_lib.DB_NAME)):
    raise project_lib.ProjectError(f"{directory} already holds a project; pass a new --project")
  experiment.check_config(_as_experiment_config(config))  # the strategy and sizes, before any work
  images, texts = items_lib.read_images(images), items_lib.read_texts(texts)
  lookups = [{}, {}]
  for m, its in ((IMAGE, images), (TEXT, texts)):
    for idx, it in enumerate(its):
      lookups[m].setdefault(it.user_id, idx)
      lookups[m][it.uid] = idx
  taken = [set(), set()]
  known = _resolve_pairs(pairs, lookups, taken) if pairs else []
  test = _resolve_pairs(test_pairs, lookups, taken) if test_pairs else []
  learner = learner_lib.Learner.of(config)
  begin = time.perf_counter()
  z = [
      learner.embed(learner.pretrained, m, [it.source for it in its], progress=True)
      for m, its in ((IMAGE, images), (TEXT, texts))
  ]
  seconds = time.perf_counter() - begin
  emb = os.path.join("embeddings", "round-0.npz")
  learner_lib.save_embeddings(os.path.join(directory, emb), z)
  scores = learner_lib.test_scores(z, np.array(test).T) if test else None

  def fill(project):
    project.set_meta(config=config.to_dict(), created=time.time())
    project.add_items(IMAGE, images)
    project.add_items(TEXT, texts)
    project.add_known_pairs(known, "train")
    project.add_known_pairs(test, "test")
    project.add_round(
        0, num_pairs=len(known), checkpoint=None, embeddings=emb, seconds=seconds, scores=scores
    )

  project_lib.Project.create(directory, fill).close()
  _say(
      f"project {directory}: {len(images)} images, {len(texts)} texts, {len(known)} known pairs,"
      f" {len(test)} test pairs; embedded in {seconds:.1f} s"
  )


def _as_experiment_config(config):
  """The fields experiment.check_config reads, from a project config."""
  out = config.copy_and_resolve_references()
  with out.unlocked():
    out.strategies = (config.strategy,)
    out.seeds = (config.seed,)
    out.rounds = 1
    out.missing_fraction = 0.0
    out.stream = dict(buffer_size=0)
  return out


def next_batch(
    directory, strategy=None, budget=None, url_prefix=labelstudio.DEFAULT_IMAGE_URL_PREFIX
):
  project = project_lib.Project(directory)
  config = project.config()
  with config.unlocked():
    config.strategy = strategy or config.strategy
    config.per_round = budget or config.per_round
    # The paper's B_C = 2 B when a larger --budget than the project's outgrows its coreset.
    config.coreset_size = max(config.coreset_size, 2 * config.per_round)
  experiment.check_config(_as_experiment_config(config))
  last = project.rounds()[-1]
  z = learner_lib.load_embeddings(project.path(last["embeddings"]))
  pools = [project.pool(m) for m in (IMAGE, TEXT)]
  if min(len(p) for p in pools) == 0 or sum(len(p) for p in pools) < config.per_round:
    raise UsageError(
        f"only {len(pools[IMAGE])} images and {len(pools[TEXT])} texts are left unaligned, too few"
        f" for a batch of {config.per_round}; lower --budget, or export the pairs"
    )
  annotated = project.train_pairs()
  batch = project.db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM batches").fetchone()[0]
  try:
    queries = learner_lib.propose(config, z, pools, annotated, key_round=batch)
  except ValueError as e:  # acquisition's one-line checks (e.g. a pool smaller than the batch)
    raise UsageError(f"cannot select batch {batch}: {e}") from None
  annotator = ProjectAnnotator(project, round_=last["round"], strategy=config.strategy)
  annotator.answer(queries)  # persists the batch; its answers arrive through ingest or serve
  folder = batch_files.write(project, batch, url_prefix=url_prefix)
  _say(
      f"batch {batch}: {len(annotator.qids)} queries ({config.strategy}, model of round"
      f" {last['round']}, selected in {queries.acquisition_seconds:.2f} s) in {folder}"
  )
  return batch, folder, queries


def ingest(directory, path):
  project = project_lib.Project(directory)
  rows = answers_lib.read(path)
  new = project.record_answers(rows, origin="ingest")
  counts = project.counts()
  _say(
      f"{path}: {new} new answers ({len(rows) - new} already recorded); {counts['pairs']} pairs,"
      f" {counts.get('pending', 0)} queries pending"
  )
  return new


def train(directory):
  project = project_lib.Project(directory)
  config = project.config()
  images, texts = project.train_pairs()
  if not len(images):
    raise UsageError("no confirmed pair yet; ingest answers (or give --pairs at init) first")
  learner = learner_lib.Learner.of(config)
  rnd = project.rounds()[-1]["round"] + 1
  items = [project.items(m) for m in (IMAGE, TEXT)]
  begin = time.perf_counter()
  params = learner.fit(
      [items[IMAGE][i][3] for i in images], [items[TEXT][t][3] for t in texts], round_=rnd
  )
  ckpt = os.path.join("checkpoints", f"round-{rnd}.npz")
  learner_lib.save_params(project.path(ckpt), params)
  z = [learner.embed(params, m, [r[3] for r in items[m]], progress=True) for m in (IMAGE, TEXT)]
  emb = os.path.join("embeddings", f"round-{rnd}.npz")
  learner_lib.save_embeddings(project.path(emb), z)
  seconds = time.perf_counter() - begin
  test = project.known_pairs("test")
  scores = learner_lib.test_scores(z, test) if len(test[0]) else None
  with project.transaction():
    project.add_round(
        rnd, num_pairs=len(images), checkpoint=ckpt, embeddings=emb, seconds=seconds, scores=scores
    )
  shown = (
      "" if scores is None else f"; test recall@1 i2t {scores['i2t']:.3f} t2i {scores['t2i']:.3f}"
  )
  _say(f"round {rnd}: trained on {len(images)} pairs and re-embedded in {seconds:.1f} s{shown}")


def status(directory):
  project = project_lib.Project(directory)
  counts = project.counts()
  _say(
      f"{directory}: {project.num_items(IMAGE)} images, {project.num_items(TEXT)} texts;"
      f" budget spent {counts['spent']} answers ({counts.get('revealed', 0)} more revealed free),"
      f" {counts.get('pending', 0)} queries pending; {counts['pairs']} confirmed pairs"
  )
  rounds = project.rounds()
  _say("round  pairs  seconds  test i2t  test t2i")
  curve = []
  for r in rounds:
    scores = json.loads(r["scores"]) if r["scores"] else None
    shown = "     -         -" if scores is None else f"{scores['i2t']:9.3f} {scores['t2i']:9.3f}"
    _say(f"{r['round']:5d} {r['num_pairs']:6d} {r['seconds']:8.1f} {shown}")
    if scores:
      curve.append((r["num_pairs"], scores["i2t"], scores["t2i"]))
  if curve:
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x, i2t, t2i = zip(*curve)
    ax.plot(x, i2t, "o-", label="image -> text")
    ax.plot(x, t2i, "s-", label="text -> image")
    ax.set(xlabel="confirmed pairs", ylabel="test recall@1", title="learning curve")
    ax.legend()
    fig.tight_layout()
    with files.atomic_write(project.path("curve.png")) as f:
      fig.savefig(f, format="png")
    plt.close(fig)
    _say(f"curve: {project.path('curve.png')}")


def export(directory, out=None, shard_size=1000):
  project = project_lib.Project(directory)
  jsonl, shards = export_lib.write(project, out or project.path("export"), shard_size=shard_size)
  n = project.counts()["pairs"]
  _say(f"{n} pairs: {jsonl} and {len(shards)} webdataset shard(s) {shards[0]} ...")
  return jsonl, shards


def serve(directory, host="127.0.0.1", port=8080):
  from mmal_jax.annotation import serve as serve_lib  # pylint: disable=g-import-not-at-top

  project_lib.Project(directory).close()  # a missing project is an error before listening
  server = serve_lib.make_server(directory, host, port)
  _say(f"serving {directory} on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()


# -- command line ----------------------------------------------------------------------------------


def _fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _parse_flags(argv):
  logging.set_verbosity(logging.ERROR)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  # a config file may raise anything
    _fail(f"bad command line ({str(e).splitlines()[0]}); see --help")


def run(argv):
  """Runs one verb of a parsed command line (argv[0] the program); raises the ERRORS or
  UsageError."""
  args = argv[1:]
  if not args or args[0] not in VERBS:
    raise UsageError(f"the first argument is the verb, one of {', '.join(VERBS)}; got {args[:1]}")
  verb, rest = args[0], args[1:]
  if len(rest) != (verb == "ingest"):
    raise UsageError(
        "ingest takes one answers FILE" if verb == "ingest" else f"{verb} takes no argument {rest}"
    )
  if not _PROJECT.value:
    raise UsageError("--project=DIR is required")
  if verb != "init" and any(a.startswith("--config") for a in sys.argv):
    raise UsageError("--config is set at init only; the project keeps its config")
  directory = _PROJECT.value
  if verb == "init":
    init(directory, _CONFIG.value, _IMAGES.value, _TEXTS.value, _PAIRS.value, _TEST_PAIRS.value)
  elif verb == "next":
    next_batch(directory, _STRATEGY.value, _BUDGET.value, _URL_PREFIX.value)
  elif verb == "ingest":
    ingest(directory, rest[0])
  elif verb == "export":
    export(directory, _OUT.value, _SHARD_SIZE.value)
  elif verb == "serve":
    serve(directory, _HOST.value, _PORT.value)
  else:
    dict(train=train, status=status)[verb](directory)


def main(argv):
  logging.set_verbosity(logging.WARNING)
  jax.config.update("jax_compilation_cache_dir", os.path.join(files.default_cache_dir(), "jax"))
  try:
    run(argv)
  except ERRORS + (UsageError,) as e:
    _fail(e)


if __name__ == "__main__":
  host_memory.reuse_freed_memory()  # before the first JAX computation starts XLA's threads
  define_flags()
  app.run(main, flags_parser=_parse_flags)
