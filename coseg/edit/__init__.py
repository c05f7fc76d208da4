"""Scene edits, GUI-free: delete, move, rotate, recolour, duplicate, with undo.

`EditDocument` is what the studio and `coseg edit` both drive; the maths lives
in `coseg.edit.ops` and `coseg.edit.sh_rotation`.
"""

from coseg.edit.document import EditDocument
from coseg.edit.io import export_gaussians, load_gaussians

__all__ = ["EditDocument", "export_gaussians", "load_gaussians"]
