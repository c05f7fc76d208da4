"""The undo history of `EditDocument`: reversible atoms grouped into user steps.

An atom is one reversible change of the document: rows of some fields
rewritten (before and after values of just those rows), the deleted mask
flipped on some rows, rows appended, or segment names changed. A step is the
atoms and JSON operations of one user action; `History.group` folds every
edit made inside it into one step (napari's ``block_history``), so a whole
drag is one undo. Undo restores exactly the stored values, so it is
bit-exact and its memory is proportional to what the edit touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coseg.gaussians import Gaussians


@dataclass
class Atom:
    """One reversible change (see module docstring)."""

    kind: str
    """"rows" | "mask" | "append" | "names"."""
    rows: np.ndarray
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    appended: Gaussians | None = None


@dataclass
class Step:
    """One user action: its atoms and the operations that replay it."""

    name: str
    atoms: list[Atom]
    ops: list[dict]


class History:
    """Undo and redo stacks of `Step`s, with grouping."""

    def __init__(self) -> None:
        self.undo_stack: list[Step] = []
        self.redo_stack: list[Step] = []
        self.open_group: Step | None = None

    def record(self, name: str, atoms: list[Atom], op: dict) -> None:
        """Add an applied change: into the open group, or as a new step (clearing redo)."""
        if self.open_group is not None:
            self.open_group.atoms.extend(atoms)
            self.open_group.ops.append(op)
        elif atoms:
            self.undo_stack.append(Step(name, atoms, [op]))
            self.redo_stack.clear()

    def close_group(self) -> None:
        step, self.open_group = self.open_group, None
        if step is not None and step.atoms:
            self.undo_stack.append(step)
            self.redo_stack.clear()

    @property
    def ops(self) -> list[dict]:
        return [op for step in self.undo_stack for op in step.ops]
