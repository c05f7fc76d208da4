"""Validation of the settings dataclasses (BuildConfig, SegmentConfig, CoSegLossConfig, ...).

Every field is checked against its annotated type (an int field takes an int,
not a bool, a string or 2.5; a float field takes any finite real number) and,
where the class declares one, against a `Range` of the values that mean
something (learning rates > 0, counts >= 1, probabilities in [0, 1], ...).
A bad value raises `SettingError`, one line naming the setting; the CLI turns
the setting's name into the option that set it (`coseg.cli.options`).

The checks run in each class's ``__post_init__``, so the CLI, the studio and
library callers all get them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from coseg.errors import InputError


class SettingError(InputError):
    """A setting with a value of the wrong type or outside its meaningful range."""

    def __init__(self, section: str, name: str, value: Any, problem: str) -> None:
        self.section, self.setting, self.value, self.problem = section, name, value, problem
        super().__init__(f"{section} setting {name}={value!r}: {problem}")


@dataclass(frozen=True)
class Range:
    """The meaningful values of a number: ``lo <= x <= hi`` (strict where `open_lo` / `open_hi`)."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def problem(self, x: float) -> str | None:
        """Why `x` is out of range, or None."""
        low_ok = self.lo is None or (x > self.lo if self.open_lo else x >= self.lo)
        high_ok = self.hi is None or (x < self.hi if self.open_hi else x <= self.hi)
        return None if low_ok and high_ok else f"must be {self.describe()}"

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {self.lo:g}"
        return f"{'<' if self.open_hi else '<='} {self.hi:g}"


POSITIVE = Range(0, open_lo=True)
"""> 0: learning rates, thresholds, epsilons."""
NON_NEGATIVE = Range(0)
"""">= 0: weights, exponents."""
AT_LEAST_1 = Range(1)
""">= 1: counts, intervals, iterations."""
UNIT = Range(0, 1)
"""[0, 1]: probabilities, fractions, mixing weights."""
OPEN_UNIT = Range(0, 1, open_lo=True, open_hi=True)
"""(0, 1): opacities, probabilities that must not be certain."""


def check_settings(obj: Any, section: str, ranges: dict[str, Range] | None = None,
                   choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """Check every field of dataclass `obj` against its type, and the given ranges and choices.

    Args:
        obj: a dataclass instance.
        section: what the settings are ("building", "segmentation", ...), for the message.
        ranges: field -> `Range` of its meaningful values (None values are left to the type).
        choices: field -> the strings it may take.

    Raises:
        SettingError: the first bad field.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = _type_problem(value, hints.get(f.name, Any))
        if problem is None and ranges and f.name in ranges and _is_number(value):
            items = value if isinstance(value, tuple) else (value,)
            problem = next((ranges[f.name].problem(v) for v in items if ranges[f.name].problem(v)), None)
        if problem is None and choices and f.name in choices and value not in choices[f.name]:
            problem = f"choose one of {', '.join(choices[f.name])}"
        if problem is not None:
            raise SettingError(section, f.name, value, problem)


def _is_number(value: Any) -> bool:
    items = value if isinstance(value, tuple) else (value,)
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items)


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why `value` does not fit the annotation `hint` (int, float, str, bool, X | None, tuple[int, ...])."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = [_type_problem(value, a) for a in args if a is not type(None)]
        return None if None in problems else problems[0]
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return "must be a list of values"
        inner = args[0] if args else Any
        return next((p for p in (_type_problem(v, inner) for v in value) if p), None)
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return "must be a whole number"
        return None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if hint is str:
        return None if isinstance(value, str) else "must be a text value"
    return None
