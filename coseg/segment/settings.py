"""Strict conversion between settings dataclasses and the JSON of config.json.

Every settings class of the segmentation stage (the stage's own, each
field's, the CoSeg loss's) is written to config.json with `settings_to_dict`
and read back with `settings_from_dict`. Reading is strict, as
`coseg.building.config.BuildConfig.from_dict` is: a key that is not a setting
is an error naming it, so a misspelt or stale setting never silently falls
back to a default. Nested settings classes and tuples round-trip.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from coseg.errors import InputError

T = TypeVar("T")


def settings_to_dict(obj) -> dict[str, Any]:
    """JSON-ready dict of a settings dataclass (tuples become lists, nested classes dicts)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = settings_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def settings_from_dict(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build settings class `cls` from a dict; unknown keys are an error.

    Args:
        cls: a dataclass.
        values: its settings (a subset; the rest keep their defaults).
        where: name of the section, for the error message (e.g. "segmentation").

    Raises:
        InputError: a key that `cls` does not have, or `values` is not a dict.
    """
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a table of settings, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"unknown {where} setting(s): {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kind = hints.get(name)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = settings_from_dict(kind, value, f"{where}.{name}")
        elif isinstance(value, list) and typing.get_origin(kind) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
