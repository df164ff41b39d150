"""The human `Annotator`: the project database stands in for the simulated oracle's ground truth.

`answer(queries)` persists the round's queries (the first `budget` picks) as a pending batch the
first time it sees them, and returns the answers recorded so far for them, in query order, as the
same `Answers` the oracle returns. The answers themselves arrive later, through `ingest` (Label
Studio, CSV, JSONL) or the `serve` page, both of which write `Project.record_answers`. With every
answer in, a batch of single-modality picks (e.g. "ours") gives exactly the oracle's `Answers`;
picks that an earlier answer of the batch reveals are marked revealed and cost nothing, as the
oracle skips them.
"""

import numpy as np

from mmal_jax.annotation.oracle import Answers, Queries
from mmal_jax.annotation.project import Project


class ProjectAnnotator:

  def __init__(self, project: Project, *, round_: int, strategy: str):
    self.project, self.round, self.strategy = project, round_, strategy
    self.qids = []  # the query ids of the last batch persisted

  def answer(self, queries: Queries) -> Answers:
    k = min(queries.budget, len(queries.item))
    asked = list(zip(queries.modality[:k].tolist(), queries.item[:k].tolist()))
    with self.project.transaction():
      known = {(q.modality, q.item): q.qid for q in self.project.queries()}
      if not all(a in known for a in asked):
        self.qids = self.project.add_batch(queries, round_=self.round, strategy=self.strategy)
        known.update(zip(asked, self.qids))
    answers = dict(self.project.db.execute("SELECT qid, partner FROM answers").fetchall())
    paid = [(m, i, answers[known[m, i]]) for m, i in asked if known[m, i] in answers]
    if not paid:
      return Answers.empty()
    return Answers(*np.array(paid, np.int64).T)
