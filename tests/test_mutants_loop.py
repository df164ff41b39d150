"""The loop's parts that a plausible one-line bug changes while whole-run tests still pass (issue
16's surviving mutants): the spare picks "uncertainty" asks for, and the margin analysis of items
whose partner is missing."""

import numpy as np

from mmal_jax import acquisition
from mmal_jax import experiment
from mmal_jax import loop
from mmal_jax.annotation.oracle import Answers
from configs import siglip_colorswap


def test_items_without_partner_map_to_no_row():
  # Image 1 has no partner (-1) while text 2, the last text, is visible: -1 must not wrap to it.
  partner = np.array([2, -1, 0, 1])
  rows = loop._partner_rows(partner, np.array([0, 1, 2, 3]), np.array([0, 2]), num_other=3)
  np.testing.assert_array_equal(rows, [1, -1, 0, -1])  # text 1 is not visible: no row either


def test_uncertainty_asks_for_spare_picks_and_spends_exactly_the_budget(monkeypatch):
  config = siglip_colorswap.get_config()
  config.data.update(num_train_groups=10, num_test_groups=2)
  config.update(per_round=3, rounds=1, coreset_size=6, strategies=("uncertainty",))
  exp = experiment.setup(config)
  # Round 0 without its evaluation: propose embeds what it selects from.
  state = loop.RunState(
      run_index=0, round=0, params=exp.pretrained, log=Answers.empty(), records=()
  )
  asked, select = [], acquisition.select

  def spy(*args, **kwargs):
    asked.append(kwargs["batch_size"])
    return select(*args, **kwargs)

  monkeypatch.setattr(acquisition, "select", spy)
  queries = loop.propose(exp, state)
  # Every modality at once: each bought pick can reveal one other pick, so 2 x 3 are asked for
  # (20 images + 20 texts unaligned), and the oracle still buys exactly 3.
  assert asked == [6] and len(queries.item) == 6 and queries.budget == 3
  answers = loop.simulated_annotator(exp, state).answer(queries)
  assert len(answers) == 3
