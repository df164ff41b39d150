"""Writing files so that no reader, and no killed run, ever sees a half-written one."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
  """Yields a file object on a temporary sibling of `path`, renamed over `path` on success.

  On any error the temporary file is removed and `path` keeps its previous content. The result is
  made world-readable (mkstemp creates 0600 files; results and package assets are for everyone).
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, mode) as f:
      yield f
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_text(path, text):
  """Writes `text` to `path` atomically."""
  with atomic_write(path, "w") as f:
    f.write(text)


def default_cache_dir():
  """Where caches live (synthetic data, compiled programs): $MMAL_JAX_CACHE, else
  ~/.cache/mmal_jax."""
  return os.environ.get("MMAL_JAX_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "mmal_jax"
  )
