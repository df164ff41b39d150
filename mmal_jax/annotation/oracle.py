"""Who answers the learner's queries, behind one small interface.

A round's `Queries` (from `loop.propose`) list candidate items in priority order and a budget; an
`Annotator` answers them with `Answers`: the paid queries in order and the partner each revealed.
It buys the candidates in order until the budget is spent, skipping a candidate that an earlier
answer of the same batch revealed (it is then known to be aligned, and costs nothing).

`Oracle` is the simulated annotator: it answers a whole batch at once from the ground truth
(`Unaligned.partner`), the only place in the loop that reads it. A human annotation tool is the
other implementation: it persists the queries, and its answers arrive later as the same `Answers`.
The run's whole query log is an `Answers` too, so a resumed run rebuilds the same oracle with
`Oracle(partner, log=...)`.
"""

import dataclasses
from typing import Optional, Protocol

import numpy as np

from mmal_jax.annotation.unaligned import IMAGE, TEXT

MODALITY_NAMES = ("image", "text")


@dataclasses.dataclass(frozen=True)
class Queries:
  """One round's request to an annotator.

  Attributes:
    modality: int64[P], the modality of each candidate, best first.
    item: int64[P], the candidates' item ids in their modality.
    budget: int, the queries to pay for (P >= budget leaves spares for revealed candidates).
    acquisition_seconds: float, the time the selection took (for the record), compiles excluded.
    candidates: optional int64[P, k], the model's suggestions for each candidate's partner (item
      ids in the other modality, best first, -1 padding): shown to a human annotator, ignored by
      the simulated one.
    compile_seconds: float, the selection's tracing and compiling seconds (compiles.Stopwatch).
  """

  modality: np.ndarray
  item: np.ndarray
  budget: int
  acquisition_seconds: float = 0.0
  candidates: Optional[np.ndarray] = None
  compile_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Answers:
  """Paid queries in order, each with its answer: modality, item, partner int64[k].

  partner[j] is the id, in modality 1 - modality[j], of item[j]'s partner; -1 if it has none
  (the missing-data variant). One round's answers, or a whole run's log (`concat`).
  """

  modality: np.ndarray
  item: np.ndarray
  partner: np.ndarray

  def __post_init__(self):
    for name in ("modality", "item", "partner"):
      object.__setattr__(self, name, np.asarray(getattr(self, name), np.int64).reshape(-1))
    if not len(self.modality) == len(self.item) == len(self.partner):
      raise ValueError(
          f"Answers needs equally long modality, item, partner; got "
          f"{len(self.modality)}, {len(self.item)}, {len(self.partner)}"
      )

  @classmethod
  def empty(cls) -> "Answers":
    return cls(np.zeros(0), np.zeros(0), np.zeros(0))

  @classmethod
  def from_json(cls, log: dict) -> "Answers":
    return cls(log["modality"], log["item"], log["partner"])

  def to_json(self) -> dict:
    return dict(
        modality=self.modality.tolist(), item=self.item.tolist(), partner=self.partner.tolist()
    )

  def __len__(self) -> int:
    return len(self.item)

  def concat(self, other: "Answers") -> "Answers":
    return Answers(
        *(
            np.concatenate([getattr(self, k), getattr(other, k)])
            for k in ("modality", "item", "partner")
        )
    )

  def bought(self, modality: int, num_items: int) -> np.ndarray:
    """bool[num_items]: items of `modality` that left the unaligned pool (queried or revealed)."""
    out = np.zeros(num_items, bool)
    out[self.item[self.modality == modality]] = True
    revealed = self.partner[(self.modality == 1 - modality) & (self.partner >= 0)]
    out[revealed] = True
    return out

  def pairs(self):
    """(image ids int64[K], text ids int64[K]) of the answered queries, in query order."""
    answered = self.partner >= 0
    item, partner, modality = self.item[answered], self.partner[answered], self.modality[answered]
    return np.where(modality == IMAGE, item, partner), np.where(modality == IMAGE, partner, item)

  def modalities(self) -> str:
    """The modalities queried, e.g. "image+text" ("" for no query)."""
    return "+".join(sorted({MODALITY_NAMES[m] for m in self.modality.tolist()}))


class Annotator(Protocol):
  """Answers a round's queries (see the module docstring for the buying rule)."""

  def answer(self, queries: Queries) -> Answers:
    ...


class Oracle:
  """The simulated `Annotator`: answers "what is the partner of item x of modality m?" for a
  two-modality pool from the ground truth.

  Attributes:
    spent: number of queries so far (answered or not): the budget used.
    log: dict(modality=, item=, partner=) int64[spent] arrays, one entry per query, in order.
  """

  def __init__(self, partner, log=None):
    """partner: (int[N_0], int[N_1]); partner[m][i] is item i's partner id in modality 1 - m, -1
    if none."""
    self._partner = tuple(np.asarray(p, np.int64) for p in partner)
    if len(self._partner) != 2:
      raise ValueError(f"Oracle supports two modalities, got {len(self._partner)} partner arrays")
    self._bought = tuple(np.zeros(len(p), bool) for p in self._partner)
    self._log = {k: [] for k in ("modality", "item", "partner")}
    if log is not None:
      log = {k: np.asarray(log[k], np.int64).reshape(-1) for k in self._log}
      for m in (IMAGE, TEXT):
        mine = log["modality"] == m
        items, answers = log["item"][mine], log["partner"][mine]
        if not np.array_equal(self._partner[m][items], answers):
          raise ValueError(
              "the oracle log does not match this pool's ground truth: "
              "the checkpoint belongs to another dataset"
          )
        self._bought[m][items] = True
        self._bought[1 - m][answers[answers >= 0]] = True
      self._log = {k: v.tolist() for k, v in log.items()}

  @property
  def spent(self):
    return len(self._log["item"])

  @property
  def log(self):
    return {k: np.asarray(v, np.int64) for k, v in self._log.items()}

  def bought(self, modality):
    """bool[N_modality]: which items of this modality already left the unaligned pool."""
    return self._bought[modality].copy()

  def is_bought(self, modality, item_id):
    """Whether one item already left the pool (queried, or revealed as a queried item's partner)."""
    return bool(self._bought[modality][item_id])

  def pairs(self):
    """(image ids int64[K], text ids int64[K]) of the answered queries, in query order."""
    log = self.log
    answered = log["partner"] >= 0
    item, partner, modality = (
        log["item"][answered],
        log["partner"][answered],
        log["modality"][answered],
    )
    return np.where(modality == IMAGE, item, partner), np.where(modality == IMAGE, partner, item)

  def query(self, modality, item_ids):
    """Buys the partners of `item_ids` (int[k]) of `modality`.

    Returns: int64[k], the partner ids in the other modality, -1 for "no partner".
    Raises: ValueError if an id is out of range, repeated, or already bought (directly or as the
    partner of an earlier query): no item is paid for twice.
    """
    if modality not in (IMAGE, TEXT):
      raise ValueError(f"modality must be 0 (image) or 1 (text), got {modality}")
    ids = np.asarray(item_ids, np.int64).reshape(-1)
    n = len(self._partner[modality])
    if ids.size and (ids.min() < 0 or ids.max() >= n):
      raise ValueError(f"item ids must lie in [0, {n}) for modality {modality}")
    if len(np.unique(ids)) != ids.size:
      raise ValueError("the same item is queried twice in one call")
    if self._bought[modality][ids].any():
      raise ValueError(
          f"items {ids[self._bought[modality][ids]].tolist()} of modality {modality} "
          "were already bought"
      )
    answers = self._partner[modality][ids]
    self._bought[modality][ids] = True
    self._bought[1 - modality][answers[answers >= 0]] = True
    self._log["modality"] += [modality] * ids.size
    self._log["item"] += ids.tolist()
    self._log["partner"] += answers.tolist()
    return answers

  def answer(self, queries: Queries) -> Answers:
    """Buys `queries` in priority order until queries.budget are paid (all at once: the simulated
    oracle answers immediately), skipping candidates revealed by an earlier answer of the batch."""
    start = self.spent
    for m, item in zip(np.asarray(queries.modality).tolist(), np.asarray(queries.item).tolist()):
      if self.spent - start == queries.budget:
        break
      if self._bought[m][item]:
        continue
      self.query(m, [item])
    log = self.log
    return Answers(*(log[k][start:] for k in ("modality", "item", "partner")))
