"""Acquisition strategies as values, so that a new one needs no edit of the package.

A strategy is a `Strategy` (a small NamedTuple, as optax's GradientTransformation is an
optimizer): a name and a round function, plus three optional fields. The built-ins ("ours",
"random", "coreset", "uncertainty", "badge"; `select.BUILTINS`) are values of this type too, and
`acquisition.select` / `select_from_state` / `picks_for_budget` take a name, a `Strategy`, a plain
function or a "module:function" path alike, resolving it once with `as_strategy`.

The round function (the built-ins' signature):

  def my_strategy(state, modality, *, batch_size, coreset_size, key):
    state:        acquisition.AcquisitionState; state.pools[m] is f32[N_m, d] (the still-unaligned
                  items of modality m, L2-normalized again under metric="cosine"),
                  state.min_distances()[m] is f32[N_m], each item's distance to the annotated
                  items of modality m (+inf while there are none), state.sizes[m] is N_m.
    modality:     int, the modality to pick from (already resolved from the caller's rule and
                  the strategy's own rule, see `Strategy.modality`), or None when the strategy's
                  own rule is "any" and the caller fixed none: pick from any modality.
    batch_size:   B, the number of picks to return; coreset_size: B_C >= B (the caller's knob,
                  free for the strategy to use or ignore).
    key:          a PRNG key for the strategy's own randomness (the modality draw uses another).
    returns       the B picks, best first: int[B] indices into state.pools[modality] when
                  `modality` is an int, or a `Selection` / a pair (modality int[B], index int[B]).

`select` then checks the picks (shape [B], integer, modality in range and equal to `modality`
when it is an int, index in [0, N_m), no item twice) and raises a one-line ValueError naming the
strategy otherwise.

From a config: `config.strategies = ("ours", "my_package.my_module:my_strategy")` (command line:
"--config.strategies=('ours','my_package.my_module:my_strategy')"); the path is imported when the
config is checked (`experiment.check_config`), and must name a `Strategy` or a round function
(wrapped with the defaults below); the path is the run's name in records and outputs. examples.py
holds one: "mmal_jax.acquisition.examples:farthest".
"""

import importlib
from typing import Any, Callable, NamedTuple, Optional

# Strategy.modality values: the query-modality rule a strategy applies when the caller's is None.
OWN_MODALITY_RULES = ("coverage", "random", "any")


class Strategy(NamedTuple):
  """An acquisition strategy.

  Attributes:
    name: str, what error messages (and, for a strategy passed by value, the caller) call it.
    select: the round function `select(state, modality, *, batch_size, coreset_size, key)`
      (see the module docstring): returns B picks.
    modality: the strategy's own query-modality rule, applied when the caller passes
      modality=None: "coverage" (the least-covered modality, step 1 of Algorithm 1; ties to the
      lowest index), "random" (one drawn uniformly from the round's key), or "any" (`select`
      gets modality=None and may pick from every modality). A caller's "random" or int rule
      overrides it.
    coverage: bool, whether `select` reads state.min_sq / state.min_distances(); False lets
      `acquisition.select` skip computing the O(N K d) distances to the annotated set.
    check: None, or `check(sizes, *, batch_size, coreset_size, modality)` raising a one-line
      ValueError before any device work when the pools (sizes: N_m per modality) cannot serve
      the round; `modality` is the caller's rule (None, "random" or an int). None: each pool the
      round may draw from must hold batch_size items (all pools together for "any" under None).
  """

  name: str
  select: Callable[..., Any]
  modality: str = "random"
  coverage: bool = True
  check: Optional[Callable[..., None]] = None


def validated(strategy: Strategy) -> Strategy:
  """Returns `strategy` after checking its fields; raises a one-line ValueError."""
  if not isinstance(strategy.name, str) or not strategy.name:
    raise ValueError(f"Strategy.name={strategy.name!r} must be a non-empty str.")
  if not callable(strategy.select):
    raise ValueError(
        f"Strategy {strategy.name!r}: select={strategy.select!r} is not callable; pass "
        "a function select(state, modality, *, batch_size, coreset_size, key)."
    )
  if strategy.modality not in OWN_MODALITY_RULES:
    raise ValueError(
        f"Strategy {strategy.name!r}: modality={strategy.modality!r} is unknown; use "
        f"one of {OWN_MODALITY_RULES}."
    )
  if strategy.check is not None and not callable(strategy.check):
    raise ValueError(
        f"Strategy {strategy.name!r}: check={strategy.check!r} is not callable; pass "
        "None or check(sizes, *, batch_size, coreset_size, modality)."
    )
  return strategy


def load(path: str) -> Strategy:
  """The strategy named by a "module:function" path (imported now); raises a one-line ValueError.

  The attribute may be a `Strategy` (returned as it is) or a round function (wrapped as
  Strategy(path, function) with the default fields); a dotted attribute ("mod:Class.fn") works.
  """
  module_name, _, attribute = path.partition(":")
  if not module_name or not attribute:
    raise ValueError(
        f"strategy={path!r} is not a 'module:function' path (e.g. "
        "'my_package.my_module:my_strategy')."
    )
  try:
    value = importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except  # any import failure is a bad path here
    first = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(
        f"strategy={path!r} does not resolve: importing {module_name!r} raised "
        f"{type(e).__name__}: {first}; put the module on sys.path (PYTHONPATH) or "
        "fix the path."
    ) from None
  for part in attribute.split("."):
    if not hasattr(value, part):
      raise ValueError(
          f"strategy={path!r} does not resolve: module {module_name!r} has no "
          f"attribute {attribute!r}."
      )
    value = getattr(value, part)
  if isinstance(value, Strategy):
    return validated(value)
  if callable(value):
    return Strategy(path, value)
  raise ValueError(
      f"strategy={path!r} resolves to a {type(value).__name__}, not a Strategy or a "
      "function select(state, modality, *, batch_size, coreset_size, key)."
  )
