"""Independent float64 NumPy reference for acquisition tests: brute-force distances and scores.

Written from ALGORITHMS.md, not from mmal_jax.acquisition: full distance matrices, full sorts.
The `*_gap` helpers measure how far the data is from a tie at each decision, so tests can assert
that their data is tie-free (float32 may order near-ties differently from float64, by design).
"""

import numpy as np


def unit_rows(rng, n, d):
  x = rng.standard_normal((n, d))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def distance_matrix(p, c, metric):
  p, c = np.asarray(p, np.float64), np.asarray(c, np.float64)
  if metric == "cosine":
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    return 1.0 - p @ c.T
  return np.sqrt(((p[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def min_distances(p, c, metric):
  if len(c) == 0:
    return np.full(len(p), np.inf)
  return distance_matrix(p, c, metric).min(axis=1)


def kcenter(points, k, centers, metric):
  """Farthest-first traversal; returns (picks, final cache, smallest top-1/top-2 gap seen)."""
  dist = distance_matrix(points, points, metric)
  cache = min_distances(points, centers, metric)
  picks, gap = [], np.inf
  for _ in range(k):
    order = np.argsort(-cache, kind="stable")
    if np.isfinite(cache[order[0]]) and len(order) > 1:
      gap = min(gap, cache[order[0]] - cache[order[1]])
    j = int(order[0])
    picks.append(j)
    cache = np.minimum(cache, dist[:, j])
  return np.array(picks), cache, gap


def margins(queries, candidates):
  s = np.sort(np.asarray(queries, np.float64) @ np.asarray(candidates, np.float64).T, axis=1)
  return s[:, -1] - s[:, -2]


def lowest(scores, k):
  """Indices of the k lowest scores and the gap between the k-th and (k+1)-th lowest."""
  order = np.argsort(scores, kind="stable")
  gap = scores[order[k]] - scores[order[k - 1]] if k < len(scores) else np.inf
  return order[:k], gap


def summed_margins(queries, pools, skip):
  return sum(margins(queries, p) for o, p in enumerate(pools) if o != skip)


def ours(pools, annotated, batch_size, coreset_size, metric):
  """Algorithm 1; returns (modality, set of picked indices, smallest decision gap)."""
  gaps = [min_distances(p, a, metric).max() for p, a in zip(pools, annotated)]
  m = int(np.argmax(gaps))
  finite = sorted(g for g in gaps if np.isfinite(g))
  gap = finite[-1] - finite[-2] if len(finite) == len(gaps) else np.inf
  picks, step_gap = ours_in(pools, annotated, m, batch_size, coreset_size, metric)
  return m, picks, min(gap, step_gap)


def ours_in(pools, annotated, m, batch_size, coreset_size, metric):
  """Steps 2-3 of Algorithm 1 on a given modality m (step 1 skipped): k-center of coreset_size
  points of pools[m] from the centers annotated[m], then the batch_size lowest summed margins;
  returns (set of picked indices, smallest decision gap)."""
  coreset, _, kc_gap = kcenter(pools[m], coreset_size, annotated[m], metric)
  picks, m_gap = lowest(summed_margins(pools[m][coreset], pools, m), batch_size)
  return set(coreset[picks].tolist()), min(kc_gap, m_gap)


def uncertainty_in(pools, m, batch_size):
  """Algorithm 4 restricted to modality m's items (scored against every other modality); returns
  (set of picked indices, gap at the cut)."""
  picks, gap = lowest(summed_margins(pools[m], pools, m), batch_size)
  return set(picks.tolist()), gap


def uncertainty(pools, batch_size):
  """Algorithm 4; returns (set of (modality, index) picked, gap at the cut)."""
  score = np.concatenate([summed_margins(p, pools, m) for m, p in enumerate(pools)])
  pairs = [(m, i) for m, p in enumerate(pools) for i in range(len(p))]
  picks, gap = lowest(score, batch_size)
  return {pairs[i] for i in picks}, gap


# The reference itself, on cases small enough to work out by hand.
def test_reference_kcenter_on_a_line():
  points = np.array([[0.0], [1.0], [10.0], [4.0]])
  picks, cache, _ = kcenter(points, 3, np.zeros((0, 1)), "euclidean")
  assert picks.tolist() == [0, 2, 3]  # 0 first (all +inf), then farthest 10, then 4 (dist 4 > 1)
  assert cache.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_reference_margins_and_ours_by_hand():
  np.testing.assert_allclose(
      margins(np.array([[1.0, 0.0]]), np.array([[0.9, 0], [0.5, 0], [0.7, 0]])), [0.2]
  )
  pools = [np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])]
  annotated = [np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]])]
  # Gaps: modality 0 -> sqrt(2) (item 1), modality 1 -> sqrt(2) (item 2); tie -> modality 0.
  m, picks, _ = ours(pools, annotated, 1, 1, "euclidean")
  assert (m, picks) == (0, {1})
