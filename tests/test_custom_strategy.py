"""Custom acquisition strategies: a round function or a `Strategy` passed to `select` by value or
as a "module:function" path (also from a config), and the one-line errors on bad picks and paths.

Expected picks are worked out by hand on points of the unit circle in 2-D, whose distances are
exact in float32 (0, sqrt(2) and 2 between the four axis points).
"""

import textwrap

import jax
import numpy as np
import pytest

from mmal_jax import acquisition
from mmal_jax import defaults
from mmal_jax import experiment
from mmal_jax import loop
from mmal_jax.annotation import unaligned as unaligned_lib

E, N, W, S = (1, 0), (0, 1), (-1, 0), (0, -1)  # the four axis points of the unit circle


def _circle():
  """Pools and annotated sets whose coverage gaps are known by hand.

  Modality 0: pool E, N, W, S; annotated E -> distances 0, sqrt2, 2, sqrt2 (largest gap 2).
  Modality 1: pool E, N, W;   annotated N -> distances sqrt2, 0, sqrt2  (largest gap sqrt2).
  So modality 0 is the least covered, and its farthest items are W (2), then N and S (sqrt2).
  """
  f32 = lambda rows: np.array(rows, np.float32).reshape(-1, 2)
  return [f32([E, N, W, S]), f32([E, N, W])], [f32([E]), f32([N])]


def farthest(state, modality, *, batch_size, coreset_size, key):
  """The B items of `modality` farthest from its annotated set (ties: lower index first)."""
  del coreset_size, key
  distance = np.asarray(state.min_distances()[modality])
  return np.argsort(-distance, kind="stable")[:batch_size]


def _kw(**kw):
  return {**dict(batch_size=2, coreset_size=2, key=jax.random.key(0)), **kw}


def test_a_strategy_value_with_the_coverage_rule_picks_what_the_hand_computation_says():
  pools, annotated = _circle()
  strategy = acquisition.Strategy("farthest", farthest, modality="coverage")
  sel = acquisition.select(strategy, pools, annotated, **_kw())
  # Least-covered modality 0; W (index 2, distance 2), then N (index 1, first of the sqrt2 tie).
  assert sel.modality.tolist() == [0, 0] and sel.index.tolist() == [2, 1]
  assert sel.modality.dtype == np.int32 and sel.index.dtype == np.int32
  # The same through the incremental state, and under a fixed modality rule (modality 1: E and W
  # at sqrt2, N at 0).
  state = acquisition.init_state(pools, annotated)
  sel = acquisition.select_from_state(strategy, state, **_kw())
  assert sel.modality.tolist() == [0, 0] and sel.index.tolist() == [2, 1]
  sel = acquisition.select(strategy, pools, annotated, **_kw(modality=1))
  assert sel.modality.tolist() == [1, 1] and sel.index.tolist() == [0, 2]


def test_a_plain_function_gets_one_modality_from_the_random_rule():
  pools, annotated = _circle()
  seen = []

  def first_two(state, modality, *, batch_size, coreset_size, key):
    seen.append((modality, state.sizes))
    return np.array([1, 0])

  for seed in range(6):
    sel = acquisition.select(first_two, pools, annotated, **_kw(key=jax.random.key(seed)))
    m, sizes = seen[-1]
    assert isinstance(m, int) and m in (0, 1) and sizes == (4, 3)
    assert sel.modality.tolist() == [m, m] and sel.index.tolist() == [1, 0]
  assert {m for m, _ in seen} == {0, 1}  # the default own rule draws either modality
  sel = acquisition.select(first_two, pools, annotated, **_kw(modality=1))
  assert seen[-1][0] == 1 and sel.modality.tolist() == [1, 1]


def test_a_strategy_over_every_modality_returns_a_selection_and_buys_twice_the_budget():
  pools, annotated = _circle()

  def both(state, modality, *, batch_size, coreset_size, key):
    assert modality is None
    return acquisition.Selection(np.array([1, 0, 1]), np.array([2, 3, 0]))

  strategy = acquisition.Strategy("both", both, modality="any", coverage=False)
  sel = acquisition.select(strategy, pools, annotated, **_kw(batch_size=3, coreset_size=3))
  assert sel.modality.tolist() == [1, 0, 1] and sel.index.tolist() == [2, 3, 0]
  # Picks of several modalities can reveal each other: 2 * budget, capped at the 7 items.
  assert acquisition.picks_for_budget(strategy, 3, (4, 3)) == 6
  assert acquisition.picks_for_budget(strategy, 5, (4, 3)) == 7
  assert acquisition.picks_for_budget(strategy, 3, (4, 3), modality=0) == 3
  assert acquisition.picks_for_budget(farthest, 3, (4, 3)) == 3


def test_the_builtins_are_strategy_values():
  assert tuple(acquisition.BUILTINS) == acquisition.STRATEGIES
  for name, strategy in acquisition.BUILTINS.items():
    assert isinstance(strategy, acquisition.Strategy) and strategy.name == name
    assert acquisition.as_strategy(name) is strategy
  # "ours" on the circle: modality 0 (gap 2 > sqrt2); coreset of 2 from center E: W (2) first,
  # then N (index 1 before S at the same distance sqrt2 from {E, W}). Margins of N and W against
  # modality 1's pool {E, N, W}: N: 1 - 0 = 1; W: 1 - 0 = 1: a tie, kept in coreset order.
  pools, annotated = _circle()
  by_name = acquisition.select("ours", pools, annotated, **_kw())
  by_value = acquisition.select(acquisition.BUILTINS["ours"], pools, annotated, **_kw())
  assert by_name.index.tolist() == by_value.index.tolist() == [2, 1]
  assert by_name.modality.tolist() == by_value.modality.tolist() == [0, 0]


def _returning(picks, modality="random"):
  return acquisition.Strategy("bad", lambda state, m, **kw: picks, modality=modality)


@pytest.mark.parametrize(
    "strategy,kw,match",
    [
        (
            _returning(np.array([2])),
            {},
            r"strategy 'bad' returned indices of shape \(1,\); expected int\[2\] \(batch_size=2",
        ),
        (
            _returning(np.array([[0, 1]])),
            {},
            r"returned indices of shape \(1, 2\); expected int\[2\]",
        ),
        (
            _returning(np.array([2, 2])),
            {"modality": 0},
            r"returned item 2 of modality 0 twice \(picks 0 and 1\); each pick must be a distinct item",
        ),
        (
            _returning(np.array([0, 4])),
            {"modality": 0},
            r"returned index 4 at pick 1, outside \[0, 4\) of pools\[0\] \(modality 0\)",
        ),
        (
            _returning(np.array([0, 3])),
            {"modality": 1},
            r"returned index 3 at pick 1, outside \[0, 3\) of pools\[1\]",
        ),
        (_returning(np.array([-1, 0])), {}, r"returned index -1 at pick 0, outside \[0, "),
        (
            _returning(np.array([0.0, 1.0])),
            {},
            r"returned indices of dtype float64; expected integers",
        ),
        (
            _returning((np.array([0, 1]), np.array([0, 0]))),
            {"modality": 0},
            r"returned modality 1 at pick 1, but this round queries modality 0 only",
        ),
        (
            _returning((np.array([0, 2]), np.array([0, 0])), "any"),
            {},
            r"returned modality 2 at pick 1; modalities are 0\.\.1",
        ),
        (
            _returning(np.array([0, 1]), "any"),
            {},
            r"returned ndarray, but with modality=None its picks may come from any modality",
        ),
        (
            _returning(acquisition.Selection(np.array([1, 0, 1]), np.array([0, 0, 0])), "any"),
            {"batch_size": 3, "coreset_size": 3},
            r"returned item 0 of modality 1 twice \(picks 0 and 2\)",
        ),
    ],
)
def test_bad_picks_raise_one_line_errors_naming_the_strategy(strategy, kw, match):
  pools, annotated = _circle()
  with pytest.raises(ValueError, match=match) as e:
    acquisition.select(strategy, pools, annotated, **_kw(**kw))
  assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "strategy,match",
    [
        (acquisition.Strategy("x", farthest, modality="least"), r"modality='least' is unknown"),
        (acquisition.Strategy("x", 3), r"select=3 is not callable"),
        (acquisition.Strategy("", farthest), r"Strategy.name='' must be a non-empty str"),
        (acquisition.Strategy("x", farthest, check="no"), r"check='no' is not callable"),
        ("bald", r"strategy='bald' is unknown; use one of \('ours', "),
        (3, r"strategy=3 is unknown"),
    ],
)
def test_malformed_strategies_are_refused_before_any_work(strategy, match):
  pools, annotated = _circle()
  with pytest.raises(ValueError, match=match):
    acquisition.select(strategy, pools, annotated, **_kw())


def test_a_custom_check_runs_before_the_strategy():
  pools, annotated = _circle()
  ran = []

  def needs_five(sizes, *, batch_size, coreset_size, modality):
    if min(sizes) < 5:
      raise ValueError(f"needs five items per modality, got {sizes}")

  strategy = acquisition.Strategy("x", lambda *a, **k: ran.append(1), check=needs_five)
  with pytest.raises(ValueError, match=r"needs five items per modality, got \(4, 3\)"):
    acquisition.select(strategy, pools, annotated, **_kw())
  assert not ran
  # The default check: batch_size items in each pool the round may draw from.
  with pytest.raises(ValueError, match=r"batch_size=4 > pool size 3 of pools\[1\] \(modality 1\)"):
    acquisition.select(farthest, pools, annotated, **_kw(batch_size=4, coreset_size=4))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
  """A module `my_strategies` on sys.path, as a user's own file would be."""
  (tmp_path / "my_strategies.py").write_text(textwrap.dedent("""
      import numpy as np
      from mmal_jax import acquisition

      def farthest(state, modality, *, batch_size, coreset_size, key):
        distance = np.asarray(state.min_distances()[modality])
        return np.argsort(-distance, kind="stable")[:batch_size]

      FARTHEST = acquisition.Strategy("farthest", farthest, modality="coverage")
      NOT_A_FUNCTION = 3

      class Holder:
        first = staticmethod(lambda state, modality, **kw: np.arange(kw["batch_size"]))
      """))
  (tmp_path / "broken_strategies.py").write_text("import no_such_module_here\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  return "my_strategies"


def test_a_module_function_path_resolves(user_module):
  pools, annotated = _circle()
  sel = acquisition.select(f"{user_module}:FARTHEST", pools, annotated, **_kw())
  assert sel.modality.tolist() == [0, 0] and sel.index.tolist() == [2, 1]
  sel = acquisition.select(f"{user_module}:farthest", pools, annotated, **_kw(modality=1))
  assert sel.modality.tolist() == [1, 1] and sel.index.tolist() == [0, 2]
  assert acquisition.as_strategy(f"{user_module}:farthest").name == f"{user_module}:farthest"
  sel = acquisition.select(f"{user_module}:Holder.first", pools, annotated, **_kw(modality=0))
  assert sel.index.tolist() == [0, 1]


@pytest.mark.parametrize(
    "path,match",
    [
        (
            "no_such_module_here:f",
            r"strategy='no_such_module_here:f' does not resolve: importing 'no_such_module_here' raised "
            r"ModuleNotFoundError",
        ),
        (
            "broken_strategies:f",
            r"importing 'broken_strategies' raised ModuleNotFoundError: No module "
            r"named 'no_such_module_here'",
        ),
        ("my_strategies:nope", r"does not resolve: module 'my_strategies' has no attribute 'nope'"),
        ("my_strategies:NOT_A_FUNCTION", r"resolves to a int, not a Strategy or a function"),
        (":farthest", r"strategy=':farthest' is not a 'module:function' path"),
        ("my_strategies:", r"is not a 'module:function' path"),
    ],
)
def test_a_path_that_does_not_resolve_is_one_line(user_module, path, match):
  del user_module
  with pytest.raises(ValueError, match=match) as e:
    acquisition.as_strategy(path)
  assert "\n" not in str(e.value)
  with pytest.raises(ValueError, match=match):
    acquisition.picks_for_budget(path, 3, (4, 3))


def test_config_strategies_take_paths_checked_at_config_time(user_module):
  config = defaults.colorswap_experiment()
  config.strategies = ("ours", f"{user_module}:farthest")
  experiment.check_config(config)
  config.strategies = ("ours", f"{user_module}:nope")
  with pytest.raises(
      experiment.ConfigError,
      match=r"config.strategies: strategy='my_strategies:"
      r"nope' does not resolve: module 'my_strategies' has no attribute 'nope'",
  ):
    experiment.check_config(config)
  config.strategies = ("ours,bogus",)
  with pytest.raises(experiment.ConfigError, match=r"strategy='bogus' is unknown"):
    experiment.check_config(config)


def test_the_loop_proposes_what_a_path_strategy_picks(user_module, tmp_path):
  # The learner's round-1 view of modality 1 is the unaligned order of the texts (nothing bought);
  # "Holder.first" picks its first B items, so the queries are those ids, in that order.
  config = defaults.colorswap_experiment()
  config.data.update(num_train_groups=12, num_test_groups=2, cache_dir=str(tmp_path / "cache"))
  config.update(
      strategies=(f"{user_module}:Holder.first",),
      per_round=3,
      rounds=1,
      coreset_size=6,
      query_modality="text",
      embed_batch_size=32,
  )
  exp = experiment.setup(config)
  state = loop.start(exp, 0)
  queries = loop.propose(exp, state)
  order = unaligned_lib.make_unaligned(
      len(exp.pool), seed=0, missing_fraction=0.0, missing_modality=1
  ).order
  assert queries.modality.tolist() == [1, 1, 1]
  assert queries.item.tolist() == order[1][:3].tolist()
  assert state.records[0]["strategy"] == f"{user_module}:Holder.first"


def test_the_packaged_example_by_its_path():
  pools, annotated = _circle()
  path = "mmal_jax.acquisition.examples:farthest"
  sel = acquisition.select(path, pools, annotated, **_kw())
  assert sel.modality.tolist() == [0, 0] and sel.index.tolist() == [2, 1]
  # Nothing annotated: every gap is +inf (modality 0 by the tie rule), every distance too (the
  # first items by the tie rule).
  sel = acquisition.select(path, pools, [a[:0] for a in annotated], **_kw())
  assert sel.modality.tolist() == [0, 0] and sel.index.tolist() == [0, 1]
