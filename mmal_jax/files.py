"""Writing files so that no reader, and no killed run, ever sees a half-written one."""

import contextlib
import errno
import fcntl
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


class Busy(OSError):
  """Another process holds the lock on a directory."""


def _lock_holders(fd):
  """The ids of the processes holding a lock on the file of `fd`, from /proc/locks (Linux; empty
  elsewhere or when unreadable)."""
  st = os.fstat(fd)
  device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
  try:
    with open("/proc/locks") as f:
      rows = [line.split() for line in f]
  except OSError:
    return []
  # "1: FLOCK  ADVISORY  WRITE 12345 00:2a:1234 0 EOF" (blocked waiters are marked "->").
  return sorted({r[4] for r in rows if len(r) > 5 and r[1] == "FLOCK" and r[5] == device})


@contextlib.contextmanager
def exclusive(directory):
  """Holds an exclusive lock on `directory` itself (flock on the directory, nothing is written)
  while the block runs; raises Busy at once if another process holds it.

  The kernel drops the lock when the holder's file descriptor closes, including when the process
  is killed (SIGKILL, OOM), so a dead run never blocks the next one. On a file system without
  flock support (some network mounts) the block runs unlocked.
  """
  fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
        yield  # no flock here (ENOLCK, EBADF on some network file systems): run unlocked
        return
      holders = [p for p in _lock_holders(fd) if p != str(os.getpid())]
      who = f" (process {', '.join(holders)})" if holders else ""
      raise Busy(errno.EWOULDBLOCK, f"{directory} is in use by another run{who}") from None
    yield
  finally:
    os.close(fd)
