"""The query-modality rule of `select` (Table 2, Fig. 4 right) and `picks_for_budget`, against the
float64 brute force of test_acquisition_reference."""

import importlib

import jax
import numpy as np
import pytest

from mmal_jax import acquisition
import test_acquisition_reference as ref

TIE_RESOLUTION = 1e-5
# The package re-exports the function `select`, which hides the module of the same name.
select_lib = importlib.import_module("mmal_jax.acquisition.select")


def _data(seed=20, sizes=(70, 60), k_ann=(3, 12), d=8):
  """Pools and annotated sets where Algorithm 1's coverage gap picks modality 0 (its annotated
  set is the smaller), so forcing modality 1 changes what "ours" does."""
  rng = np.random.default_rng(seed)
  pools = [ref.unit_rows(rng, n, d) for n in sizes]
  annotated = [ref.unit_rows(rng, k, d) for k in k_ann]
  return pools, annotated


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("m", [0, 1])
def test_ours_with_a_fixed_modality_is_kcenter_from_its_annotated_set_then_lowest_margins(
    metric, m
):
  pools, annotated = _data()
  auto, _, _ = ref.ours(pools, annotated, 5, 10, metric)
  assert auto == 0  # so m = 1 overrides the coverage gap
  sel = acquisition.select(
      "ours",
      pools,
      annotated,
      batch_size=5,
      coreset_size=10,
      key=jax.random.key(0),
      metric=metric,
      modality=m,
  )
  want, gap = ref.ours_in(pools, annotated, m, 5, 10, metric)
  assert gap > TIE_RESOLUTION, "test data has a near-tie; change the seed"
  np.testing.assert_array_equal(sel.modality, np.full(5, m))
  assert set(sel.index.tolist()) == want


def test_ours_with_a_random_modality_uses_the_baselines_draw_then_steps_2_and_3():
  pools, annotated = _data()
  drawn = set()
  for seed in range(6):
    key = jax.random.key(seed)
    sel = acquisition.select(
        "ours", pools, annotated, batch_size=5, coreset_size=10, key=key, modality="random"
    )
    m = int(sel.modality[0])
    drawn.add(m)
    # The same draw as the baselines that pick a uniformly random modality from the same key.
    assert m == int(
        acquisition.select(
            "coreset", pools, annotated, batch_size=5, coreset_size=10, key=key
        ).modality[0]
    )
    want, gap = ref.ours_in(pools, annotated, m, 5, 10, "euclidean")
    assert gap > TIE_RESOLUTION
    assert (sel.modality == m).all() and set(sel.index.tolist()) == want
  assert drawn == {0, 1}


@pytest.mark.parametrize("m", [0, 1])
def test_uncertainty_restricted_to_one_modality_matches_reference(m):
  pools, _ = _data(seed=21)
  empty = [p[:0] for p in pools]
  sel = acquisition.select(
      "uncertainty", pools, empty, batch_size=7, coreset_size=7, key=jax.random.key(0), modality=m
  )
  want, gap = ref.uncertainty_in(pools, m, 7)
  assert gap > TIE_RESOLUTION
  assert (sel.modality == m).all() and set(sel.index.tolist()) == want
  both, _ = ref.uncertainty(pools, 7)
  assert {i for o, i in both if o == m} != want  # the restriction changes the picks here
  # "random" restricts it to the drawn modality.
  for seed in range(4):
    key = jax.random.key(seed)
    sel = acquisition.select(
        "uncertainty", pools, empty, batch_size=7, coreset_size=7, key=key, modality="random"
    )
    drawn = int(
        acquisition.select("random", pools, empty, batch_size=7, coreset_size=7, key=key).modality[
            0
        ]
    )
    assert (sel.modality == drawn).all()
    assert set(sel.index.tolist()) == ref.uncertainty_in(pools, drawn, 7)[0]


@pytest.mark.parametrize("m", [0, 1])
def test_baselines_with_a_fixed_modality_draw_from_it(m):
  pools, annotated = _data(seed=22)
  for seed in range(3):
    key = jax.random.key(seed)
    coreset = acquisition.select(
        "coreset", pools, annotated, batch_size=6, coreset_size=6, key=key, modality=m
    )
    want, _, gap = ref.kcenter(pools[m], 6, annotated[m], "euclidean")
    assert gap > TIE_RESOLUTION
    assert (coreset.modality == m).all()
    np.testing.assert_array_equal(coreset.index, want)
    for strategy in ("random", "badge"):
      sel = acquisition.select(
          strategy, pools, annotated, batch_size=6, coreset_size=6, key=key, modality=m
      )
      assert (sel.modality == m).all(), strategy
      assert len(set(sel.index.tolist())) == 6 and sel.index.max() < len(pools[m]), strategy


@pytest.mark.parametrize("strategy", ["random", "coreset", "badge"])
def test_random_modality_is_the_baselines_own_rule(strategy):
  pools, annotated = _data(seed=23)
  for seed in range(3):
    kw = dict(batch_size=6, coreset_size=6, key=jax.random.key(seed))
    a = acquisition.select(strategy, pools, annotated, **kw)
    b = acquisition.select(strategy, pools, annotated, modality="random", **kw)
    np.testing.assert_array_equal(a.modality, b.modality)
    np.testing.assert_array_equal(a.index, b.index)


def test_select_from_state_takes_the_modality_rule():
  pools, annotated = _data(seed=24)
  state = acquisition.init_state(pools, annotated)
  sel = acquisition.select_from_state(
      "ours", state, batch_size=4, coreset_size=9, key=jax.random.key(0), modality=1
  )
  assert (sel.modality == 1).all()
  assert set(sel.index.tolist()) == ref.ours_in(pools, annotated, 1, 4, 9, "euclidean")[0]
  with pytest.raises(ValueError, match=r"modality=2 is unknown"):
    acquisition.select_from_state(
        "ours", state, batch_size=4, coreset_size=9, key=jax.random.key(0), modality=2
    )


@pytest.mark.parametrize(
    "modality,strategy,kw,match",
    [
        (
            2,
            "ours",
            {},
            r"modality=2 is unknown; use None .*'random' or a modality index in \[0, 2\)",
        ),
        ("text", "random", {}, r"modality='text' is unknown"),
        (True, "coreset", {}, r"modality=True is unknown"),
        (1.0, "badge", {}, r"modality=1.0 is unknown"),
        (-1, "uncertainty", {}, r"modality=-1 is unknown"),
        # Only the forced modality's pool must hold the coreset (pools of 20 and 15 items).
        (
            1,
            "ours",
            {"coreset_size": 16},
            r"coreset_size=16 > pool size 15 of pools\[1\] \(modality 1\)",
        ),
        ("random", "ours", {"coreset_size": 16}, r"coreset_size=16 > pool size 15 of pools\[1\]"),
        (
            1,
            "uncertainty",
            {"batch_size": 16, "coreset_size": 16},
            r"batch_size=16 > pool size 15 of pools\[1\] \(modality 1\)",
        ),
    ],
)
def test_bad_modality_rules_raise_before_device_work(modality, strategy, kw, match):
  rng = np.random.default_rng(25)
  pools = [ref.unit_rows(rng, 20, 4), ref.unit_rows(rng, 15, 4)]
  args = {**dict(batch_size=4, coreset_size=8, key=jax.random.key(0)), **kw}
  with pytest.raises(ValueError, match=match):
    acquisition.select(strategy, pools, [p[:0] for p in pools], modality=modality, **args)


def test_a_fixed_modality_only_needs_its_own_pool_large_enough():
  rng = np.random.default_rng(25)
  pools = [ref.unit_rows(rng, 20, 4), ref.unit_rows(rng, 15, 4)]
  sel = acquisition.select(
      "ours",
      pools,
      [p[:0] for p in pools],
      batch_size=4,
      coreset_size=16,
      key=jax.random.key(0),
      modality=0,
  )
  assert (sel.modality == 0).all() and len(set(sel.index.tolist())) == 4


def test_select_runs_each_check_once(monkeypatch):
  checks = importlib.import_module("mmal_jax.acquisition.checks")
  calls = {"check_round": 0, "check_modalities": 0}
  for name in calls:
    original = getattr(checks, name)

    def counted(*args, _original=original, _name=name, **kwargs):
      calls[_name] += 1
      return _original(*args, **kwargs)

    monkeypatch.setattr(checks, name, counted)
  pools, annotated = _data(seed=26)
  acquisition.select("ours", pools, annotated, batch_size=4, coreset_size=8, key=jax.random.key(0))
  assert calls == {"check_round": 1, "check_modalities": 1}


def _old_loop_rule(strategy, budget, sizes):
  """The batch the loop asked for before picks_for_budget (mmal_jax/loop.py, commit a9d67cb)."""
  return min(2 * budget, sum(sizes)) if strategy == "uncertainty" else budget


def test_picks_for_budget_keeps_the_old_rule_and_is_the_budget_for_one_modality():
  for strategy in acquisition.STRATEGIES:
    for budget, sizes in (
        (70, (1400, 1400)),
        (70, (90, 40)),
        (5, (3, 4)),
        (1, (0, 7)),
        (10, (5, 5, 5)),
    ):
      assert acquisition.picks_for_budget(strategy, budget, sizes) == _old_loop_rule(
          strategy, budget, sizes
      )
      for modality in ("random", 0, 1):
        assert acquisition.picks_for_budget(strategy, budget, sizes, modality=modality) == budget


@pytest.mark.parametrize(
    "args,match",
    [
        (("bald", 5, (10, 10)), r"strategy='bald' is unknown"),
        (("ours", 0, (10, 10)), r"budget must be an int >= 1"),
        (("ours", 5, (10,)), r"sizes=\(10,\) must list"),
        (("ours", 5, (10, -1)), r"sizes\[1\] \(modality 1\) must be an int >= 0"),
        (("uncertainty", 5, (10, 10), 2), r"modality=2 is unknown"),
    ],
)
def test_picks_for_budget_rejects_bad_input(args, match):
  with pytest.raises(ValueError, match=match):
    acquisition.picks_for_budget(*args)


def _buy(selection, partner, budget):
  """Queries picks in order, skipping a pick revealed by an earlier query (as loop._buy); returns
  the queries spent. partner[m][i]: the other-modality partner of item i of modality m."""
  spent, known = 0, set()
  for m, i in zip(selection.modality.tolist(), selection.index.tolist()):
    if spent == budget:
      break
    if (m, i) in known:
      continue
    spent += 1
    known.add((1 - m, int(partner[m][i])))
  return spent


@pytest.mark.parametrize("modality", [None, 0])
def test_picks_for_budget_spends_the_budget_when_every_pick_reveals_the_next(modality):
  # Images and texts with identical embeddings, item i paired with item i: the similarity matrix
  # is symmetric, so image i and text i have the same margin and "uncertainty" lists them side by
  # side. Buying image i reveals text i: the worst case, half the picks are free.
  rng = np.random.default_rng(27)
  x = ref.unit_rows(rng, 40, 6)
  pools, partner, budget = [x, x.copy()], [np.arange(40), np.arange(40)], 8
  batch = acquisition.picks_for_budget("uncertainty", budget, (40, 40), modality=modality)
  sel = acquisition.select(
      "uncertainty",
      pools,
      [p[:0] for p in pools],
      batch_size=batch,
      coreset_size=batch,
      key=jax.random.key(0),
      modality=modality,
  )
  assert _buy(sel, partner, budget) == budget
  if modality is None:  # asking for only `budget` picks would spend half of it here
    short = acquisition.select(
        "uncertainty",
        pools,
        [p[:0] for p in pools],
        batch_size=budget,
        coreset_size=budget,
        key=jax.random.key(0),
    )
    assert _buy(short, partner, budget) == budget // 2


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
  """A 60-pair embedded pool under the loop's public setup, and the learner's pools embedded
  independently of the loop with the pretrained model: per modality f32[N, D], learner's order."""
  from mmal_jax import defaults, embeddings, experiment  # pylint: disable=g-import-not-at-top
  from mmal_jax.annotation import unaligned as unaligned_lib  # pylint: disable=g-import-not-at-top

  patch = pytest.MonkeyPatch()
  patch.setenv("MMAL_JAX_CACHE", str(tmp_path_factory.mktemp("cache")))
  config = defaults.colorswap_experiment("sigmoid")
  config.data.update(num_train_groups=30, num_test_groups=4)
  config.update(per_round=5, rounds=1, coreset_size=10, embed_batch_size=32)
  exp = experiment.setup(config)
  u = unaligned_lib.make_unaligned(len(exp.pool), seed=0)
  images = exp.prep.images(exp.pool.images[u.rows[0][u.order[0]]])
  pools = [
      embeddings.embed_images(exp.model, exp.pretrained, images, batch_size=32, mesh=exp.mesh),
      embeddings.embed_texts(
          exp.model,
          exp.pretrained,
          exp.pool_tokens[u.rows[1][u.order[1]]],
          batch_size=32,
          mesh=exp.mesh,
      ),
  ]
  yield config, u, pools
  patch.undo()


@pytest.mark.parametrize("strategy", ["ours", "uncertainty", "coreset"])
@pytest.mark.parametrize("rule,m", [("text", 1), ("image", 0)])
def test_config_query_modality_makes_the_loop_select_from_that_modality_only(
    tiny_pool, strategy, rule, m
):
  # Round 1 of the loop (loop.propose on the pretrained model, nothing annotated) under
  # config.query_modality = rule, against the float64 reference on independently embedded pools.
  from mmal_jax import experiment, loop  # pylint: disable=g-import-not-at-top

  config, u, pools = tiny_pool
  config = config.copy_and_resolve_references()
  config.update(strategies=(strategy,), query_modality=rule)
  exp = experiment.setup(config)
  queries = loop.propose(exp, loop.start(exp, 0))
  empty = [p[:0] for p in pools]
  if strategy == "ours":
    want, _ = ref.ours_in(pools, empty, m, 5, 10, "euclidean")
  elif strategy == "uncertainty":
    want, _ = ref.uncertainty_in(pools, m, 5)
  else:
    want = set(ref.kcenter(pools[m], 5, empty[m], "euclidean")[0].tolist())
  assert queries.budget == 5 and len(queries.item) == 5  # picks_for_budget: one modality, no spares
  assert (queries.modality == m).all()
  position = np.argsort(u.order[m])  # item id -> row of pools[m]
  got = position[queries.item]
  # Captions repeat (identical texts embed identically), and the reference may break such an exact
  # tie differently: compare the picked embeddings as multisets.
  key = lambda rows: sorted(map(tuple, pools[m][sorted(rows)].tolist()))
  assert key(got) == key(want)
