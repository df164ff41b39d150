"""Times `python -m mmal_jax.annotate init` and `next` on a 10,000 + 10,000 item project made from
the embedded synthetic data (5,000 ColorSwap-like groups, images as PNG files, texts as a CSV).

  python experiments/bench_annotate.py [--root=/tmp/annotate_bench] [--num_groups=5000]

Prints the wall time of each command as a user runs it (a fresh process: imports, JAX compiles
and all), and the user+system CPU time of the child processes.
"""

import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
# pylint: disable-next=g-import-not-at-top,wrong-import-position
from annotate_helpers import write_unpaired

_ROOT = flags.DEFINE_string("root", "/tmp/annotate_bench", "Where to write the data and project.")
_NUM_GROUPS = flags.DEFINE_integer("num_groups", 5000, "ColorSwap-like groups (2 items each).")


def timed(argv):
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  begin = time.perf_counter()
  subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
  wall = time.perf_counter() - begin
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  print(f"  -> wall {wall:.1f} s, cpu {cpu:.1f} s: {' '.join(argv[3:])}", flush=True)


def main(_):
  data = os.path.join(_ROOT.value, "data")
  if not os.path.isdir(os.path.join(data, "images")):
    begin = time.perf_counter()
    write_unpaired(data, num_groups=_NUM_GROUPS.value)
    print(f"wrote {2 * _NUM_GROUPS.value} images and texts in {time.perf_counter() - begin:.0f} s")
  project = os.path.join(_ROOT.value, f"project-{int(time.time())}")
  cli = [sys.executable, "-m", "mmal_jax.annotate"]
  timed(
      cli + ["init", f"--project={project}", f"--images={data}/images", f"--texts={data}/texts.csv"]
  )
  timed(cli + ["next", f"--project={project}"])
  timed(cli + ["next", f"--project={project}"])


if __name__ == "__main__":
  app.run(main)
