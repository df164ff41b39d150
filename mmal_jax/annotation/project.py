"""An annotation project's state: one SQLite database, `project.sqlite`, in the project directory.

Tables: meta (the config), items (per modality: dense index, content-hash id, the user's id,
source), known_pairs (given at init: split "train" joins training, "test" is only scored), rounds
(one model per round: 0 is the pretrained one; its embeddings and checkpoint files lie beside the
database), batches (one per `next`), queries (pending / answered / revealed, with a lease while one
annotator has it on the page) and answers (one per query: the partner's index, or -1 for none).

Every verb's writes are one transaction (BEGIN IMMEDIATE ... COMMIT) in WAL mode with synchronous
FULL, so a kill at any moment leaves the state of the last commit: a committed answer is never
lost, a half-done ingest leaves nothing. Files beside the database are written atomically before
the row naming them is committed, so a row never names a missing file. Concurrent writers (several
annotators on `serve`) queue on SQLite's write lock (busy_timeout), never on Python state.
"""

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from typing import Optional

import ml_collections
import numpy as np

from mmal_jax.annotation.oracle import Answers, Queries
from mmal_jax.annotation.unaligned import IMAGE, TEXT

DB_NAME = "project.sqlite"
NONE_ANSWERS = ("none", "no partner", "-1")  # how an answer says "none of these" (any case)

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items(
  modality INTEGER NOT NULL, idx INTEGER NOT NULL, uid TEXT NOT NULL, user_id TEXT NOT NULL,
  source TEXT NOT NULL, PRIMARY KEY (modality, idx), UNIQUE (modality, uid),
  UNIQUE (modality, user_id));
CREATE TABLE known_pairs(
  image INTEGER NOT NULL UNIQUE, text INTEGER NOT NULL UNIQUE, split TEXT NOT NULL);
CREATE TABLE rounds(
  round INTEGER PRIMARY KEY, created REAL NOT NULL, num_pairs INTEGER NOT NULL,
  checkpoint TEXT, embeddings TEXT NOT NULL, seconds REAL NOT NULL, scores TEXT);
CREATE TABLE batches(
  batch INTEGER PRIMARY KEY, round INTEGER NOT NULL, strategy TEXT NOT NULL,
  budget INTEGER NOT NULL, created REAL NOT NULL, seconds REAL NOT NULL);
CREATE TABLE queries(
  qid TEXT PRIMARY KEY, batch INTEGER NOT NULL, position INTEGER NOT NULL,
  modality INTEGER NOT NULL, item INTEGER NOT NULL, candidates TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', lease_owner TEXT, lease_until REAL,
  UNIQUE (modality, item));
CREATE TABLE answers(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, qid TEXT NOT NULL UNIQUE REFERENCES queries(qid),
  partner INTEGER NOT NULL, origin TEXT NOT NULL, created REAL NOT NULL);
"""


class ProjectError(ValueError):
  """A missing or mismatched project directory: one line, exit code 2."""


class AnswerError(ValueError):
  """An answer that cannot be recorded (unknown id, item paired twice, conflict, malformed row);
  the message names the row. Nothing of its file or request was recorded."""


@dataclasses.dataclass(frozen=True)
class Query:
  qid: str
  batch: int
  modality: int
  item: int
  candidates: tuple  # the model's suggestions: item indices of modality 1 - modality, best first
  state: str


class Project:
  """One open connection to a project's database (not shared between threads: each server
  thread opens its own)."""

  def __init__(self, directory: str, *, _path: Optional[str] = None):
    self.directory = directory
    path = _path or os.path.join(directory, DB_NAME)
    if _path is None and not os.path.isfile(path):
      raise ProjectError(f"{directory} holds no project ({DB_NAME}); run `init` first")
    # isolation_level=None: transactions are begun explicitly (`transaction`), never implicitly.
    self.db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    self.db.execute("PRAGMA journal_mode=WAL")
    self.db.execute("PRAGMA synchronous=FULL")  # a committed answer survives a power cut too
    self.db.execute("PRAGMA foreign_keys=ON")

  @classmethod
  def create(cls, directory: str, fill) -> "Project":
    """A new project whose schema and first rows (`fill(project)`) are written to a temporary
    database, renamed into place once committed and closed: a killed init leaves no project."""
    path = os.path.join(directory, DB_NAME)
    if os.path.exists(path):
      raise ProjectError(f"{directory} already holds a project ({DB_NAME}); pass a new --project")
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".init"
    for stale in (tmp, tmp + "-wal", tmp + "-shm"):  # a killed init's leftovers
      if os.path.exists(stale):
        os.unlink(stale)
    project = cls(directory, _path=tmp)
    project.db.executescript(_SCHEMA)  # in the temporary file, which only a commit renames
    with project.transaction():
      fill(project)
    project.db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to rename
    project.close()
    os.replace(tmp, path)
    return cls(directory)

  def close(self):
    self.db.close()

  def path(self, *parts) -> str:
    return os.path.join(self.directory, *parts)

  @contextlib.contextmanager
  def transaction(self):
    """BEGIN IMMEDIATE (the write lock first, so two writers never both read stale state) ...
    COMMIT, or ROLLBACK on any exception."""
    self.db.execute("BEGIN IMMEDIATE")
    try:
      yield self.db
    except BaseException:
      self.db.execute("ROLLBACK")
      raise
    self.db.execute("COMMIT")

  # -- meta and items ----------------------------------------------------------------------------

  def set_meta(self, **values):
    self.db.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
    )

  def meta(self, key, default=None):
    row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])

  def config(self) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(self.meta("config"))

  def add_items(self, modality: int, items):
    self.db.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
        [(modality, i, it.uid, it.user_id, it.source) for i, it in enumerate(items)],
    )

  def num_items(self, modality: int) -> int:
    return self.db.execute("SELECT COUNT(*) FROM items WHERE modality = ?", (modality,)).fetchone()[
        0
    ]

  def items(self, modality: int, ids=None) -> list[tuple]:
    """(idx, uid, user_id, source) of items `ids` of `modality` in that order (default: all)."""
    sql = "SELECT idx, uid, user_id, source FROM items WHERE modality = ?"
    if ids is None:
      return self.db.execute(sql + " ORDER BY idx", (int(modality),)).fetchall()
    ids = [int(i) for i in ids]
    # A few rows by primary key: the page and the answer checks stay fast on large projects.
    rows = self.db.execute(
        f"{sql} AND idx IN ({','.join('?' * len(ids))})", (int(modality), *ids)
    ).fetchall()
    by_idx = {r[0]: r for r in rows}
    return [by_idx[i] for i in ids]

  def find(self, modality: int, item_id: str) -> Optional[int]:
    """The index of the item of `modality` whose content id, else whose user id, is `item_id`."""
    row = self.db.execute(
        "SELECT idx FROM items WHERE modality = ? AND (uid = ? OR user_id = ?) "
        "ORDER BY uid = ? DESC LIMIT 1",
        (int(modality), item_id, item_id, item_id),
    ).fetchone()
    return None if row is None else row[0]

  def add_known_pairs(self, pairs, split: str):
    self.db.executemany(
        "INSERT INTO known_pairs VALUES (?, ?, ?)", [(i, t, split) for i, t in pairs]
    )

  def known_pairs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = self.db.execute(
        "SELECT image, text FROM known_pairs WHERE split = ? ORDER BY rowid", (split,)
    ).fetchall()
    return tuple(np.array([r[k] for r in rows], np.int64) for k in (0, 1))

  # -- what is known ------------------------------------------------------------------------------

  def log(self) -> Answers:
    """Every answered query, in answer order: the human annotator's run log (as the oracle's)."""
    rows = self.db.execute(
        "SELECT q.modality, q.item, a.partner FROM answers a JOIN queries q USING (qid) "
        "ORDER BY a.seq"
    ).fetchall()
    if not rows:
      return Answers.empty()
    return Answers(*np.array(rows, np.int64).T)

  def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, text ids) int64[K] of every confirmed pair: known train pairs, then answers."""
    known, answered = self.known_pairs("train"), self.log().pairs()
    return tuple(np.concatenate([known[m], answered[m]]) for m in (IMAGE, TEXT))

  def pool(self, modality: int) -> np.ndarray:
    """int64: the items of `modality` still unaligned (not queried, not known to be paired, not
    held out for testing), in index order."""
    left = np.zeros(self.num_items(modality), bool)
    column = ("image", "text")[modality]
    left[[r[0] for r in self.db.execute(f"SELECT {column} FROM known_pairs")]] = True
    left[
        [r[0] for r in self.db.execute("SELECT item FROM queries WHERE modality = ?", (modality,))]
    ] = True
    left[
        [
            r[0]
            for r in self.db.execute(
                "SELECT a.partner FROM answers a JOIN queries q USING (qid) "
                "WHERE q.modality = ? AND a.partner >= 0",
                (1 - modality,),
            )
        ]
    ] = True
    return np.flatnonzero(~left).astype(np.int64)

  # -- rounds and batches --------------------------------------------------------------------

  def rounds(self) -> list[dict]:
    cursor = self.db.execute("SELECT * FROM rounds ORDER BY round")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]

  def add_round(self, rnd, *, num_pairs, checkpoint, embeddings, seconds, scores=None):
    self.db.execute(
        "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?)",
        (rnd, time.time(), num_pairs, checkpoint, embeddings, seconds, json.dumps(scores)),
    )

  def add_batch(self, queries: Queries, *, round_, strategy) -> list[str]:
    """Persists the first queries.budget picks of `queries` as pending queries of a new batch;
    returns their query ids ("b<batch>-q<position>"). Call inside a transaction."""
    batch = self.db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM batches").fetchone()[0]
    self.db.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
        (batch, round_, strategy, queries.budget, time.time(), queries.acquisition_seconds),
    )
    qids = []
    for k in range(min(queries.budget, len(queries.item))):
      qid = f"b{batch}-q{k + 1}"
      candidates = [int(c) for c in queries.candidates[k] if c >= 0]
      self.db.execute(
          "INSERT INTO queries (qid, batch, position, modality, item, candidates) "
          "VALUES (?, ?, ?, ?, ?, ?)",
          (qid, batch, k, int(queries.modality[k]), int(queries.item[k]), json.dumps(candidates)),
      )
      qids.append(qid)
    return qids

  def queries(self, *, batch: Optional[int] = None, state: Optional[str] = None) -> list[Query]:
    sql, args = "SELECT qid, batch, modality, item, candidates, state FROM queries WHERE 1", []
    if batch is not None:
      sql, args = sql + " AND batch = ?", args + [batch]
    if state is not None:
      sql, args = sql + " AND state = ?", args + [state]
    rows = self.db.execute(sql + " ORDER BY batch, position", args).fetchall()
    return [Query(q, b, m, i, tuple(json.loads(c)), s) for q, b, m, i, c, s in rows]

  def counts(self) -> dict:
    """Queries by state, answers, pairs: what `status` prints."""
    out = dict(self.db.execute("SELECT state, COUNT(*) FROM queries GROUP BY state").fetchall())
    out["pairs"] = len(self.train_pairs()[0])
    out["spent"] = self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    return out

  # -- answers -------------------------------------------------------------------------------

  def record_answers(self, rows, origin: str) -> int:
    """Records answers (qid, partner id or a NONE_ANSWERS word, where) in one transaction; returns
    how many were new (an answer identical to a recorded one is skipped, so ingesting a file twice
    is harmless).

    Raises AnswerError, naming the row (`where`), on an unknown query or partner id, an item paired
    twice, or a query given two different answers; then nothing of `rows` is recorded.
    """
    with self.transaction():
      state = _AnswerState(self)
      new = []
      for qid, partner, where in rows:
        answer = state.check(qid, partner, where)
        if answer is not None:
          new.append(answer)
      now = time.time()
      self.db.executemany(
          "INSERT INTO answers (qid, partner, origin, created) VALUES (?, ?, ?, ?)",
          [(qid, p, f"{origin} {where}", now) for qid, p in new],
      )
      self.db.executemany(
          "UPDATE queries SET state = 'answered', lease_owner = NULL, lease_until = NULL "
          "WHERE qid = ?",
          [(qid,) for qid, _ in new],
      )
      # A pending query whose item an answer just paired costs nothing more: it is revealed.
      self.db.executemany(
          "UPDATE queries SET state = 'revealed' WHERE state = 'pending' AND modality = ? AND "
          "item = ?",
          [(1 - state.query[qid][0], p) for qid, p in new if p >= 0],
      )
    return len(new)

  def claim(self, annotator: str, lease_seconds: float) -> Optional[Query]:
    """The next pending query for `annotator` (the one it already holds, else the first one nobody
    holds), leased to it for lease_seconds; None when none is left. One transaction: two
    annotators never hold the same query."""
    now = time.time()
    with self.transaction():
      row = self.db.execute(
          "SELECT qid FROM queries WHERE state = 'pending' AND (lease_owner = ? OR lease_until IS "
          "NULL OR lease_until < ?) ORDER BY lease_owner = ? DESC, batch, position LIMIT 1",
          (annotator, now, annotator),
      ).fetchone()
      if row is None:
        return None
      self.db.execute(
          "UPDATE queries SET lease_owner = ?, lease_until = ? WHERE qid = ?",
          (annotator, now + lease_seconds, row[0]),
      )
    return self.query(row[0])

  def query(self, qid: str) -> Optional[Query]:
    row = self.db.execute(
        "SELECT qid, batch, modality, item, candidates, state FROM queries WHERE qid = ?", (qid,)
    ).fetchone()
    return None if row is None else Query(*row[:4], tuple(json.loads(row[4])), row[5])


class _AnswerState:
  """Who is paired with whom (known pairs and recorded answers), updated row by row while a batch
  of answers is checked, so rows of one file are checked against each other too."""

  def __init__(self, project: Project):
    self.query = {
        qid: (m, i)
        for qid, m, i in project.db.execute("SELECT qid, modality, item FROM queries").fetchall()
    }
    self.answer = dict(project.db.execute("SELECT qid, partner FROM answers").fetchall())
    self.where = {qid: "an earlier answer" for qid in self.answer}
    self.project = project
    # partner[m][i]: item i of modality m is paired with partner[m][i] (-1: it has none).
    self.partner = [{}, {}]
    for image, text, _ in project.db.execute("SELECT * FROM known_pairs"):
      self._pair(IMAGE, image, text)
    for qid, p in self.answer.items():
      self._pair(*self.query[qid], p)

  def _pair(self, m, i, p):
    self.partner[m][i] = p
    if p >= 0:
      self.partner[1 - m][p] = i

  def check(self, qid, partner, where):
    """(qid, partner index) to record, None for a repeat of a recorded answer; raises
    AnswerError."""
    if qid not in self.query:
      raise AnswerError(f"{where}: unknown query id {qid!r}; use the ids of the queries files")
    m, i = self.query[qid]
    text = str(partner).strip()
    p = -1 if text.lower() in NONE_ANSWERS else self.project.find(1 - m, text)
    if p is None:
      kind = ("image", "text")[1 - m]
      raise AnswerError(
          f"{where}: unknown {kind} id {text!r} as the partner of query {qid}; use an id of the"
          " query's candidates or 'none'"
      )
    if qid in self.answer:
      if self.answer[qid] == p:
        return None
      raise AnswerError(
          f"{where}: query {qid} gets {self._name(m, p)} here but {self._name(m, self.answer[qid])}"
          f" in {self.where[qid]}; keep one answer"
      )
    known = self.partner[m].get(i)
    if known is not None and known != p:
      raise AnswerError(
          f"{where}: query {qid}'s item {self._uid(m, i)} is already paired with"
          f" {self._name(m, known)}; an item is paired once"
      )
    if p >= 0 and self.partner[1 - m].get(p, i) != i:
      raise AnswerError(
          f"{where}: {self._uid(1 - m, p)} is already paired with"
          f" {self._name(1 - m, self.partner[1 - m][p])}; an item is paired once"
      )
    self.answer[qid], self.where[qid] = p, where
    self._pair(m, i, p)
    return qid, p

  def _uid(self, m, i):
    return self.project.items(m, [i])[0][1]

  def _name(self, m, p):
    """How an answer to a query of modality m reads: the partner's content id, or 'none'."""
    return "none" if p < 0 else self._uid(1 - m, p)
