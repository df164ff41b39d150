"""DataComp's own layout: webdataset tar shards as img2dataset writes them, read in order in
bounded memory; and a writer of such shards (the synthetic stream, the tests).

Layout. A shard is a tar file whose members come in samples: consecutive members that share a
key (the member name up to the first dot of its base name), e.g. `000000003.jpg`,
`000000003.txt`, `000000003.json`. The image is `.jpg` (or `.jpeg`, `.png`, `.webp`), the caption
`.txt` (UTF-8), the metadata `.json`, whose "uid" names the pair (DataComp's 32-hex uid; the key
when absent). A shard list is a brace pattern, `shards/{00000..00127}.tar` (a numeric range keeps
the zero padding of its first bound) or `{a,b}` lists, several groups allowed.

Reading. `WebDataset(pattern, image_size=S)` is a `Shards`: iterating it yields `Block`s (a
`Pairs` plus the uids and metadata) of at most `block_size` samples, shard after shard; `buffers(n)`
regroups them into blocks of exactly n pairs (the last may be shorter). A tar is read as a stream
(`tarfile` mode "r|"), one member at a time, so memory holds one block and one buffer, whatever
the number of shards. Samples whose image does not decode, or whose caption or image is missing or
empty, are skipped and counted in `WebDataset.skipped` (reason -> count); a missing shard, a file
that is not a tar, or a shard with no usable sample is a `DataError` naming the file.

Why the standard library's `tarfile` and not the `webdataset` package: what is needed here is a
sequential read of local tar files, which `tarfile` does in a few lines with no dependency; the
package's value (URL and pipe sources, worker sharding, shuffle buffers, PyTorch DataLoader
integration) is not used, its error handlers drop bad samples without counting them by reason,
and it is not installed in this environment (nor is its `braceexpand` dependency; the brace
expansion below is a dozen lines).
"""

import collections
import dataclasses
import io
import itertools
import json
import os
import re
import tarfile
from typing import Iterator, Optional

from absl import app
from absl import flags
import numpy as np
import PIL.Image

from mmal_jax import files
from mmal_jax.data.images import decode_image
from mmal_jax.data.pairs import DataError, LabeledPairs, Pairs

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
BLOCK_SIZE = 1024  # samples decoded at a time: bounds memory at large image sizes
PROMPTS_FILE = "prompts.json"  # zero-shot class prompts, next to a labeled split's shards

_BRACE = re.compile(r"\{([^{}]*)\}")


def expand(pattern: str) -> list[str]:
  """The paths of a brace pattern, in order: `{00000..00002}` -> 00000, 00001, 00002 (padded to
  the first bound's width), `{a,b}` -> a, b; several groups multiply."""
  match = _BRACE.search(pattern)
  if match is None:
    return [pattern]
  body = match.group(1)
  rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
  if rng:
    lo, hi = rng.groups()
    if int(hi) < int(lo):
      raise DataError(
          f"shard pattern {pattern!r}: range {{{body}}} runs backwards; write {{lo..hi}}"
      )
    options = [str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1)]
  else:
    options = body.split(",")
  head, tail = pattern[: match.start()], pattern[match.end() :]
  return [p for o in options for p in expand(head + o + tail)]


@dataclasses.dataclass(frozen=True)
class Block(Pairs):
  """Pairs read from shards, with uids[i] (str) and meta[i] (the sample's .json dict)."""

  uids: tuple = ()
  meta: tuple = ()


def _key_and_ext(name):
  directory, base = os.path.split(name)
  key, _, ext = base.partition(".")
  return os.path.join(directory, key), ext.lower()


def _samples(path) -> Iterator[tuple[str, dict]]:
  """(key, {extension: bytes}) of every sample of one tar, streamed member by member."""
  try:
    tar = tarfile.open(path, mode="r|*")
  except tarfile.TarError as e:
    raise DataError(
        f"webdataset shard {path} is not a readable tar file ({e}); rewrite the shard or drop it "
        "from the pattern"
    ) from None
  key, fields = None, {}
  try:
    with tar:
      for member in tar:
        if not member.isfile():
          continue
        k, ext = _key_and_ext(member.name)
        if k != key and fields:
          yield key, fields
          fields = {}
        key = k
        fields[ext] = tar.extractfile(member).read()
  except tarfile.TarError as e:
    raise DataError(
        f"webdataset shard {path} is truncated or damaged ({e}); rewrite the shard or drop it "
        "from the pattern"
    ) from None
  if fields:
    yield key, fields


def _parse(key, fields, image_size, where):
  """(image uint8[S, S, 3], caption, uid, meta) of one sample, or the reason it is skipped."""
  image = next((fields[e] for e in IMAGE_EXTENSIONS if e in fields), None)
  if image is None:
    return "no image"
  if "txt" not in fields:
    return "no .txt"
  try:
    caption = fields["txt"].decode("utf-8").strip()
  except UnicodeDecodeError:
    return "caption not UTF-8"
  if not caption:
    return "empty caption"
  meta = {}
  if "json" in fields:
    try:
      meta = json.loads(fields["json"])
    except ValueError:
      return "bad .json"
  try:
    pixels = decode_image(image, image_size, where)
  except DataError:
    return "unreadable image"
  return pixels, caption, str(meta.get("uid", key)), meta


class WebDataset:
  """A `Shards` over the tar files of a brace pattern (see the module docstring).

  Attributes:
    paths: the shard files, in stream order.
    skipped: collections.Counter, reason -> samples skipped so far (over every iteration).
    num_read: usable samples yielded so far.
  """

  def __init__(self, pattern: str, *, image_size: int, block_size: int = BLOCK_SIZE):
    self.pattern, self.image_size, self.block_size = pattern, int(image_size), int(block_size)
    self.paths = expand(pattern)
    self.skipped = collections.Counter()
    self.num_read = 0

  def _block(self, chunk):
    self.num_read += len(chunk)
    images, texts, uids, meta = zip(*chunk)
    return Block(images=np.stack(images), texts=texts, uids=uids, meta=meta)

  def shard(self, path) -> Iterator[Block]:
    """The blocks of one shard; raises DataError if it is missing or has no usable sample."""
    if not os.path.isfile(path):
      raise DataError(
          f"webdataset shard {path} does not exist (pattern {self.pattern!r}, {len(self.paths)} "
          "shards); fix the pattern or restore the file"
      )
    chunk, seen, skipped = [], 0, collections.Counter()
    for key, fields in _samples(path):
      seen += 1
      sample = _parse(key, fields, self.image_size, f"{path} sample {key}")
      if isinstance(sample, str):
        skipped[sample] += 1
        continue
      chunk.append(sample)
      if len(chunk) == self.block_size:
        yield self._block(chunk)
        chunk = []
    self.skipped.update(skipped)
    if chunk:
      yield self._block(chunk)
    elif seen == sum(skipped.values()):  # nothing usable was yielded from this shard
      why = f" ({seen} samples, all skipped: {dict(skipped)})" if seen else ""
      raise DataError(
          f"webdataset shard {path} holds no usable sample{why}; rewrite the shard or drop it "
          "from the pattern"
      )

  def __iter__(self) -> Iterator[Block]:
    for path in self.paths:
      yield from self.shard(path)

  def buffers(self, size: int) -> Iterator[Block]:
    """Blocks of exactly `size` pairs in stream order (the last may be shorter), holding at most
    one shard block besides the buffer being filled."""
    pending, have = [], 0
    for block in self:
      start = 0
      while start < len(block):
        take = min(size - have, len(block) - start)
        pending.append(_slice(block, start, start + take))
        have, start = have + take, start + take
        if have == size:
          yield _concat(pending)
          pending, have = [], 0
    if pending:
      yield _concat(pending)


def _slice(block, lo, hi):
  return Block(
      images=block.images[lo:hi],
      texts=block.texts[lo:hi],
      uids=block.uids[lo:hi],
      meta=block.meta[lo:hi],
  )


def _concat(blocks):
  if len(blocks) == 1:
    return blocks[0]
  return Block(
      images=np.concatenate([b.images for b in blocks]),
      **{
          k: tuple(itertools.chain(*(getattr(b, k) for b in blocks)))
          for k in ("texts", "uids", "meta")
      },
  )


def read_labeled(pattern: str, *, image_size: int) -> Pairs:
  """A whole (small) split in memory: `LabeledPairs` when a `prompts.json` lies next to its first
  shard (each sample's .json then holds "labels": {attribute: [class names present]}), else
  `Pairs`."""
  data = WebDataset(pattern, image_size=image_size)
  blocks = list(data)
  block = _concat(blocks)
  prompts_path = os.path.join(os.path.dirname(data.paths[0]), PROMPTS_FILE)
  if not os.path.isfile(prompts_path):
    return Pairs(images=block.images, texts=block.texts)
  with open(prompts_path, encoding="utf-8") as f:
    prompts = json.load(f)
  classes = {a: tuple(per_class) for a, per_class in prompts.items()}
  labels = {}
  for attribute, names in classes.items():
    index = {n: c for c, n in enumerate(names)}
    present = np.zeros((len(block), len(names)), bool)
    for i, meta in enumerate(block.meta):
      for name in meta.get("labels", {}).get(attribute, ()):
        if name not in index:
          raise DataError(
              f"{data.paths[0]}..: sample {block.uids[i]} labels {attribute}={name!r}, which "
              f"{prompts_path} does not list; add its prompts or fix the label"
          )
        present[i, index[name]] = True
    labels[attribute] = present
  return LabeledPairs(
      images=block.images,
      texts=block.texts,
      labels=labels,
      prompts={a: tuple(tuple(p) for p in prompts[a].values()) for a in classes},
  )


def load_webdataset(
    *, shards: str, test_shards: Optional[str] = None, image_size: int
) -> tuple[WebDataset, Pairs]:
  """The registry's reader: (the stream of `shards`, the held-out split `test_shards` in memory).
  The stream's shards are opened as it is read; a bad one raises DataError then."""
  if not test_shards:
    raise DataError(
        "config.data.test_shards is required for data.name='webdataset' (the held-out split); "
        "set it, e.g. --config.data.test_shards='/data/test/{00000..00001}.tar'"
    )
  stream = WebDataset(shards, image_size=image_size)
  if not os.path.isfile(stream.paths[0]):
    stream.shard(stream.paths[0]).__next__()  # raises the missing-shard error now
  return stream, read_labeled(test_shards, image_size=image_size)


# ------------------------------------------------------------------------------------------------
# Writing.


def _jpeg(image) -> bytes:
  out = io.BytesIO()
  PIL.Image.fromarray(image).save(out, format="JPEG", quality=95)
  return out.getvalue()


def _add(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_shards(directory: str, blocks, *, samples_per_shard: int = 10000, meta=None) -> str:
  """Writes `blocks` (an iterable of `Pairs`, read once, in order) as img2dataset shards
  `directory/00000.tar`, ... of `samples_per_shard` samples: `{key}.jpg`, `{key}.txt`,
  `{key}.json` = {"uid", "caption", "key"}, plus meta(caption) when given (a dict). Keys are the
  shard number then the sample number, zero-padded, as img2dataset's; uids are the blocks'
  `uids` when they carry them, else 32 hex digits of the stream index. A shard is built in memory
  (one at a time) and written atomically. Returns the brace pattern of the shards written."""
  os.makedirs(directory, exist_ok=True)
  shard, index, buf, tar = 0, 0, None, None

  def flush():
    tar.close()
    with files.atomic_write(os.path.join(directory, f"{shard:05d}.tar")) as f:
      f.write(buf.getvalue())

  for block in blocks:
    uids = getattr(block, "uids", ()) or ()
    for i in range(len(block)):
      if tar is None:
        buf = io.BytesIO()
        tar = tarfile.open(fileobj=buf, mode="w")
      key = f"{shard:05d}{index % samples_per_shard:04d}"
      caption = block.texts[i]
      record = dict(uid=uids[i] if uids else f"{index:032x}", caption=caption, key=key)
      record.update(meta(caption) if meta else {})
      _add(tar, key + ".jpg", _jpeg(block.images[i]))
      _add(tar, key + ".txt", caption.encode("utf-8"))
      _add(tar, key + ".json", json.dumps(record).encode("utf-8"))
      index += 1
      if index % samples_per_shard == 0:
        flush()
        tar, shard = None, shard + 1
  if tar is not None:
    flush()
    shard += 1
  if shard == 0:
    raise DataError(f"write_shards: no pairs to write to {directory}")
  return os.path.join(directory, f"{{{0:05d}..{shard - 1:05d}}}.tar")


def synthetic_labels(caption: str) -> dict:
  """{"labels": {attribute: [class names]}} of a synthetic caption, which names every attribute
  (the background is the word before "background")."""
  from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  words = caption.split()
  return dict(
      labels=dict(
          color=sorted({w for w in words if w in synthetic.COLORS}),
          shape=sorted({w for w in words if w in synthetic.SHAPES}),
          size=sorted({w for w in words if w in synthetic.SIZES}),
          background=[words[words.index("background") - 1]],
      )
  )


def synthetic_prompts() -> dict:
  """{attribute: {class: [prompts]}}: each class of color, shape, size and background named by the
  single-object caption "a {size} {color} {shape} on a {background} background", an ensemble over
  every value of the other three attributes (CLIP-style prompt ensembling, in the data's words)."""
  from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  values = dict(
      size=sorted(synthetic.SIZES),
      color=sorted(synthetic.COLORS),
      shape=sorted(synthetic.SHAPES),
      background=sorted(synthetic.BACKGROUNDS),
  )
  every = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
  text = "a {size} {color} {shape} on a {background} background"
  return {
      a: {v: sorted({text.format(**c) for c in every if c[a] == v}) for v in values[a]}
      for a in ("color", "shape", "size", "background")
  }


def write_synthetic(
    directory: str,
    *,
    num_pairs: int,
    num_test_pairs: int = 2000,
    seed: int = 0,
    samples_per_shard: int = 10000,
    cache_dir=None,
) -> tuple[str, str]:
  """The embedded ColorSwap-like data as a DataComp-style stream: `directory/train/` (num_pairs
  pool pairs) and `directory/test/` (num_test_pairs held-out pairs, with attribute labels in their
  .json and `prompts.json` for zero-shot classification). Returns the two brace patterns."""
  from mmal_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  splits = synthetic.colorswap_like(
      seed=seed,
      num_train_groups=max(1, num_pairs // 2),
      num_test_groups=max(1, num_test_pairs // 2),
      cache_dir=cache_dir,
  )
  train = write_shards(
      os.path.join(directory, "train"),
      [splits.train.take(np.arange(num_pairs))],
      samples_per_shard=samples_per_shard,
  )
  test = write_shards(
      os.path.join(directory, "test"),
      [splits.test.take(np.arange(num_test_pairs))],
      samples_per_shard=samples_per_shard,
      meta=synthetic_labels,
  )
  files.write_text(
      os.path.join(directory, "test", PROMPTS_FILE), json.dumps(synthetic_prompts(), indent=1)
  )
  return train, test


if __name__ == "__main__":
  flags.DEFINE_string("out", None, "directory to write train/ and test/ shards to", required=True)
  flags.DEFINE_integer("num_pairs", 100000, "pairs in the stream (train/)")
  flags.DEFINE_integer("num_test_pairs", 2000, "held-out pairs (test/)")
  flags.DEFINE_integer("samples_per_shard", 10000, "samples per tar shard (img2dataset: 10,000)")
  flags.DEFINE_integer("seed", 0, "synthetic data seed")

  def _main(argv):
    del argv
    f = flags.FLAGS
    print(
        *write_synthetic(
            f.out,
            num_pairs=f.num_pairs,
            num_test_pairs=f.num_test_pairs,
            seed=f.seed,
            samples_per_shard=f.samples_per_shard,
        ),
        sep="\n",
    )

  app.run(_main)
