"""Import of an already-trained 3DGS ``.ply`` into a run folder, skipping training.

Files written by the official 3DGS code, gsplat and nerfstudio use the INRIA
vertex layout read by `coseg.io.ply.read_gaussians_ply`. The run gets a
config.json (building section ``{"source": "import", ...}``), the model
re-written as ``gaussians.ply`` and a building section in metrics.json, so the
segmentation stage, ``coseg eval`` and ``coseg render`` follow as after training.
"""

from __future__ import annotations

import logging
from pathlib import Path

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.run import RunDir

log = logging.getLogger(__name__)


def import_ply(ply_path: str | Path, run: RunDir) -> Gaussians:
    """Read a trained 3DGS PLY and write it into `run` as its building result.

    Args:
        ply_path: the trained model (INRIA layout).
        run: a run folder whose config.json already exists (`RunDir.create`).

    Returns:
        The imported Gaussians (N of them).

    Raises:
        InputError: missing or unreadable file, or a model with NaN/inf values.
    """
    from coseg.io.ply import read_gaussians_ply, write_gaussians_ply

    ply_path = Path(ply_path)
    if not ply_path.exists():
        raise InputError(f"{ply_path}: file not found")
    gaussians = read_gaussians_ply(ply_path)
    try:
        gaussians.check_finite(str(ply_path))
    except ValueError as e:
        raise InputError(str(e)) from e
    if len(gaussians) == 0:
        raise InputError(f"{ply_path}: holds no Gaussians")
    run.update_config("building", {"source": "import", "ply": str(ply_path.resolve()),
                                   "sh_degree": gaussians.sh_degree})
    write_gaussians_ply(gaussians, run.gaussians_path)
    run.update_metrics("building", {"completed": True, "imported_from": str(ply_path.resolve()),
                                    "num_gaussians": len(gaussians)}, replace=True)
    log.info("imported %d Gaussians (SH degree %d) from %s into %s",
             len(gaussians), gaussians.sh_degree, ply_path, run.path)
    return gaussians
