"""Segmentation fields: one interface (`Field`), one module each, chosen by name.

- `coseg` (`fields.coseg`): the paper's feature unprojection + fusion decoder (default).
- `per-gaussian` (`fields.per_gaussian`): Gaussian Grouping's per-Gaussian identities (baseline).
- `label-vote` (`fields.label_vote`): the raw labels voted onto the Gaussians (training-free reference).

Fields are plugins of kind ``segmentation_field`` (`coseg.plugins`): the
built-in ones register from ``plugins/segmentation_fields.py`` exactly as a
third-party package would from its ``coseg.plugins`` entry point, and the
stage looks the configured name up in the registry.
"""

from __future__ import annotations

from coseg.segment.fields.base import Field, StageInputs

KIND = "segmentation_field"

__all__ = ["Field", "StageInputs", "field_class", "field_names", "KIND"]


def field_names() -> list[str]:
    """Names of the registered segmentation fields, in registration order."""
    from coseg.plugins import registry

    return registry().names(KIND)


def field_class(name: str) -> type[Field]:
    """The registered field class called `name`.

    Raises:
        InputError: no field of that name.
    """
    from coseg.errors import InputError
    from coseg.plugins import registry

    if name not in field_names():
        raise InputError(f"unknown segmentation field {name!r} (known: {', '.join(field_names())})")
    return registry().get(KIND, name)
