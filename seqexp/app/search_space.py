"""A search space in Hydra's sweep grammar, as Optuna distributions.

``hydra.sweeper.params`` and the command line say what a search varies in the words of Hydra's own
override grammar, parsed here by Hydra's parser; :func:`search_space` turns each key into what the Optuna
study draws:

- ``choice(a, b, c)`` (or ``a,b,c``): a CategoricalDistribution of those values;
- ``range(start, stop[, step])``: an Int- or FloatDistribution with that step, over Hydra's values, which
  stop before ``stop`` as Python's range does;
- ``interval(low, high)``: a FloatDistribution (Hydra's parser reads both ends as floats, so
  ``interval(1, 8)`` draws floats too, as it did in the released hydra-optuna-sweeper; ``range(1, 9)``
  draws integers); ``tag(log, interval(...))`` draws it on a log scale;
- a plain value: not drawn, the same override in every trial (a command line's ``optim.lr=1e-3`` takes
  that key out of the search).
"""

import math
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from seqexp.errors import ConfigError


@dataclass
class SearchSpace:
    """What each trial draws (``{key: distribution}``) and what every trial sets (``{key: value}``), keys as
    Hydra overrides name them (``model.hidden_size``, ``+new_key``)."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)


def search_space(overrides: list[str]) -> SearchSpace:
    """The search space of ``key=value`` overrides, later ones winning: the preset's params come first,
    the command line after them."""
    space = SearchSpace()
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        if override.is_sweep_override():
            space.distributions[key] = distribution(override)
        else:
            space.fixed[key] = override.get_value_element_as_str()
    return space


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override; ConfigError for a sweep Optuna cannot draw from."""
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(_choices(override))
    if isinstance(value, RangeSweep):
        return _range_distribution(override, value)
    if isinstance(value, IntervalSweep):
        assert value.start is not None and value.end is not None  # the grammar requires both
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    # glob(...) of a config group became a choice in seqexp/app/sweep_setup.py; any other is not a space.
    raise ConfigError(
        f"{override.input_line}: the Optuna sweeper draws from choice(...), range(...) and interval(...)"
    )


def _choices(override: Override) -> list[CategoricalChoiceType]:
    # Encoded as Hydra writes them back into an override, so that a trial's `key=value` parses again.
    choices: list[CategoricalChoiceType] = []
    for choice in override.sweep_iterator(transformer=Transformer.encode):
        if not isinstance(choice, str | int | float | bool | type(None)):
            raise ConfigError(f"{override.input_line}: a choice is a single value, not {choice!r}")
        choices.append(choice)
    return choices


def _range_distribution(override: Override, sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None  # the grammar requires both
    count = math.ceil((stop - start) / step) if step > 0 else 0
    if count < 1:
        raise ConfigError(f"{override.input_line}: a range to draw from needs a positive step and a value")
    if all(isinstance(x, int) for x in (start, stop, step)):
        return IntDistribution(int(start), int(start + (count - 1) * step), step=int(step))
    return FloatDistribution(float(start), float(start + (count - 1) * step), step=float(step))
