"""Replaying saved operations (`EditDocument.ops`, a project's history) onto a document.

Each operation is applied by the same `EditDocument` method that recorded
it, with its recorded parameters, so a replay on the same source rebuilds
the edited scene bit for bit. Operations of projects saved before the
splat-level tools (segment targets, duplicates without an offset) replay as
they did then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coseg.edit.document import EditDocument

KNOWN_OPS = ("delete", "move", "rotate", "transform", "recolor", "duplicate", "assign", "merge", "split", "rename")


def apply_op(doc: "EditDocument", op: dict) -> None:
    """Apply one recorded operation (see module docstring).

    Raises:
        ValueError: an unknown operation or a row set that does not fit the model.
        KeyError: a field the operation needs is missing.
    """
    kind = op.get("op")
    if kind not in KNOWN_OPS:
        raise ValueError(f"unknown edit operation {kind!r}")
    if kind == "merge":
        doc.merge(op["segments"])
    elif kind == "split":
        doc.split(op["segment"], op["radius"], op["min_points"])
    elif kind == "rename":
        doc.rename(op["segment"], op["name"])
    elif kind == "duplicate" and "offset" not in op:
        doc.duplicate(op["segments"])
    else:
        _apply_targeted(doc, kind, op)


def _apply_targeted(doc: "EditDocument", kind: str, op: dict) -> None:
    rows = doc.target_rows(op)
    target = {"segments": op["segments"]} if "rows" not in op else None
    if kind == "delete":
        doc.delete_rows(rows, target)
    elif kind == "move":
        doc.translate_rows(rows, op["delta"], target)
    elif kind == "rotate":
        doc.rotate_rows(rows, op["degrees"], op.get("center"), target)
    elif kind == "recolor":
        doc.recolor_rows(rows, op["rgb"], target)
    elif kind == "duplicate":
        doc.duplicate_rows(rows, op["offset"], target)
    elif kind == "transform":
        doc.transform_rows(rows, op["pivot"], op["rotation"], op["scale"], op["translate"])
    elif kind == "assign":
        doc.assign(rows, op["segment"], op.get("name"))
