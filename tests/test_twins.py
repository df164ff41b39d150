"""experiments/twins.py's share of bought pairs whose color-swap twin is bought too, on a log
written by hand (image ids map to source rows; rows 2g and 2g + 1 are twins)."""

import numpy as np

from experiments import twins
from mmal_jax.annotation.oracle import Answers


def test_twin_shares_by_hand():
  rows_of_image = np.array([5, 4, 0, 1, 7, 2], np.int64)  # image id -> source row
  # Round 1 buys images 0 and 2 (rows 5, 0: no twins); round 2 buys image 1 (row 4, twin of 5) by
  # a text query (modality 1: item is the text id, partner the image id) and image 3 (row 1,
  # twin of 0); round 3 buys an item without a partner (missing data: not a pair) and image 4.
  log = Answers(
      modality=[0, 0, 1, 0, 0, 0],
      item=[0, 2, 9, 3, 5, 4],
      partner=[10, 11, 1, 12, -1, 13],
  )
  shares = twins.twin_shares(log, rows_of_image, queried_per_round=[2, 2, 2])
  # Round 2: rows {5, 0, 4, 1}: all four have their twin. Round 3: row 7 added, its twin 6 not.
  np.testing.assert_allclose(shares, [0.0, 1.0, 4 / 5])


def test_key_counts_and_crowding_by_hand():
  texts = [
      "a small red circle to the left of a big blue square on a navy background",
      "a small blue circle to the left of a big red square on a navy background",  # same bag
      "a big green cross above a small white diamond on a teal background",
      "not a caption of the generator",
  ]
  counts = twins.key_counts(texts)
  np.testing.assert_array_equal(counts, [2, 2, 1, 0])
  log = Answers(modality=[0, 0], item=[0, 1], partner=[5, 6])
  rows_of_image = np.array([2, 0], np.int64)
  np.testing.assert_allclose(twins.crowding(log, rows_of_image, [1, 1], counts), [1.0, 1.5])
