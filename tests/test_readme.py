"""Every command line of README.md runs as written, on small fixture data, so README and code
cannot drift apart.

The commands are extracted from the README itself: every `python -m mmal_jax.main ...` line (in
code blocks or inline code), every inline flag list starting with `--config.` (run on the default
config) and every config file of the table. Each is parsed by `main.parse`, exactly as the CLI
parses it, with tiny sizes appended (the README's other settings stand), and run in-process on
fixture data that replaces the README's placeholder paths. The big_vision checkpoint command
needs a B/16 checkpoint this test does not have: it must get as far as reading `/ckpt.npz`, which
proves that every field it sets exists and that tokenizer, data and model were built.
"""

import os
import pathlib
import re
import shlex

import pytest

from mmal_jax import experiment
from mmal_jax import loop
from mmal_jax import main
from mmal_jax.data import webdataset
import small_models
import test_coco_reader
import test_colorswap_reader

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT = "--config=configs/siglip_colorswap.py"
# Sizes only: appended after the README's flags, so that each command runs in seconds.
TINY = [
    "--config.per_round=1",
    "--config.rounds=1",
    "--config.coreset_size=2",
    "--config.train.epochs=1",
    "--config.train.batch_size=4",
    "--config.embed_batch_size=8",
    "--config.data.num_train_groups=4",
    "--config.data.num_test_groups=2",
]
# Appended unless the README sets them.
SMALL = {"--config.strategies": "--config.strategies=ours", "--config.seeds": "--config.seeds=0"}


def readme_commands(text):
  """The mmal_jax.main argument lists (without the program) the README asks its reader to run."""
  spans = re.findall(r"`([^`\n]+)`", text)  # inline code (no multi-line spans: keep lines whole)
  spans += [line.strip() for line in text.splitlines() if line.startswith("    ")]  # code blocks
  out = []
  for span in spans:
    if "mmal_jax.main" in span and ("--coordinator_address" in span or "--command=" in span):
      continue  # multi-host launch templates for other machines (tests/test_multihost.py)
    if "mmal_jax.main" in span:
      command = next(c for c in span.split("&&") if "mmal_jax.main" in c)
      args = shlex.split(command.split("mmal_jax.main", 1)[1])
      if any("CONFIG" in a or a.startswith("[") for a in args):
        continue  # the usage template `--config=CONFIG [--workdir=DIR] ...`
    elif span.startswith("--config."):
      args = [DEFAULT, *shlex.split(span)]
    elif re.fullmatch(r"configs/\w+\.py", span):
      args = [f"--config={span}"]
    else:
      continue
    if args not in out:
      out.append(args)
  return out


COMMANDS = readme_commands((ROOT / "README.md").read_text())


def test_the_readme_has_the_commands_it_should():
  joined = [" ".join(c) for c in COMMANDS]
  for words in (
      "--config.data.name=colorswap --config.data.path=/data/colorswap",
      "siglip_coco_stream.py --config.data.format=tfds",
      "--config.model.init=/ckpt.npz",
      "--config=configs/lit_colorswap.py",
      "--config.missing_fraction=0.2",
  ):
    assert any(words in c for c in joined), words


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
  """Placeholder path of the README -> fixture data standing in for it."""
  root = tmp_path_factory.mktemp("readme")
  test_colorswap_reader._write_official(root / "colorswap")  # pylint: disable=protected-access
  for split in ("train2017", "val2017"):
    test_coco_reader._write_json(root / "coco", split)  # pylint: disable=protected-access
  test_coco_reader.write_tfds(root / "tfds", {"train": [5, 8, 2, 11], "val": [3, 4, 6, 7]})
  # The README's synthetic stream: 10 shards of 1 pair (its pattern names 10), 4 held-out pairs.
  webdataset.write_synthetic(
      str(root / "synth"),
      num_pairs=10,
      num_test_pairs=4,
      samples_per_shard=1,
      cache_dir=str(root / "cache"),
  )
  return {
      "/data/colorswap": root / "colorswap",
      "/data/coco": root / "coco",
      "/data/tfds": root / "tfds",
      "/data/synth": root / "synth",
  }


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
  saved = os.environ.get("MMAL_JAX_CACHE")
  os.environ["MMAL_JAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))
  yield
  if saved is None:
    os.environ.pop("MMAL_JAX_CACHE")
  else:
    os.environ["MMAL_JAX_CACHE"] = saved


def _sp_model(directory):
  pytest.importorskip("sentencepiece")
  return small_models.train_sentencepiece(directory)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:80] for c in COMMANDS])
def test_readme_command_runs(args, fixtures, tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)  # the README's commands run from the repository root
  args = [
      a.split("=", 1)[0] + "=" + str(tmp_path / "run") if a.startswith("--workdir=") else a
      for a in args
  ]
  for placeholder, path in fixtures.items():
    args = [a.replace(placeholder, str(path)) for a in args]
  args = [a.replace("/spm.model", _sp_model(tmp_path)) if "/spm.model" in a else a for a in args]
  extra = [flag for key, flag in SMALL.items() if not any(a.startswith(key + "=") for a in args)]
  config, _ = main.parse(["main", *args, *TINY, *extra])
  if config.data.name == "coco" and not config.data.root:  # the table's row: "needs COCO on disk"
    extra.append(f"--config.data.root={fixtures['/data/coco']}")
  if config.data.name == "webdataset" and not config.data.shards:  # the table's row
    extra += [
        f"--config.data.shards={fixtures['/data/synth']}/train/{{00000..00009}}.tar",
        f"--config.data.test_shards={fixtures['/data/synth']}/test/00000.tar",
    ]
  if config.stream.buffer_size:
    extra.append("--config.stream.buffer_size=2")
  config, _ = main.parse(["main", *args, *TINY, *extra])
  workdir = str(tmp_path / "run")
  if "--config.model.init=/ckpt.npz" in args:
    with pytest.raises(experiment.ConfigError, match="cannot read init checkpoint.*/ckpt.npz"):
      loop.train_and_evaluate(config, workdir)
    return
  records = loop.train_and_evaluate(config, workdir)
  runs = len(experiment.strategies_of(config)) * len(config.seeds)
  assert len(records) == runs * (config.rounds + 1)
  assert all(r["num_queried"] == r["round"] * config.per_round for r in records)
