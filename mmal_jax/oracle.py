"""The annotator: reveals the partner of a picked item, at one unit of budget per query.

The only place in the loop that reads the ground truth (`Unaligned.partner`). Its state is the
query log, so a resumed run rebuilds the same oracle with `Oracle(partner, log=...)`.
"""
import numpy as np

IMAGE, TEXT = 0, 1


class Oracle:
  """Answers "what is the partner of item x of modality m?" for a two-modality pool.

  Attributes:
    spent: number of queries so far (answered or not): the budget used.
    log: dict(modality=, item=, partner=) int64[spent] arrays, one entry per query, in order.
  """

  def __init__(self, partner, log=None):
    """partner: (int[N_0], int[N_1]); partner[m][i] is item i's partner id in modality 1 - m, -1 if none."""
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
          raise ValueError("the oracle log does not match this pool's ground truth: "
                           "the checkpoint belongs to another dataset")
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
    item, partner, modality = log["item"][answered], log["partner"][answered], log["modality"][answered]
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
      raise ValueError(f"items {ids[self._bought[modality][ids]].tolist()} of modality {modality} "
                       "were already bought")
    answers = self._partner[modality][ids]
    self._bought[modality][ids] = True
    self._bought[1 - modality][answers[answers >= 0]] = True
    self._log["modality"] += [modality] * ids.size
    self._log["item"] += ids.tolist()
    self._log["partner"] += answers.tolist()
    return answers
