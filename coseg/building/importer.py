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


def import_ply(ply_path: str | Path, run: RunDir, overwrite: bool = False) -> Gaussians:
    """Read a trained 3DGS PLY and write it into `run` as its building result.

    Args:
        ply_path: the trained model (INRIA layout).
        run: a run folder whose config.json already exists (`RunDir.create`).
        overwrite: replace an earlier building result (kept in ``previous/``).

    Returns:
        The imported Gaussians (N of them).

    Raises:
        InputError: missing or unreadable file, or no Gaussian with finite values.
        CosegError: the run already has a building result and `overwrite` is False.
    """
    from coseg.io.ply import read_gaussians_ply, write_gaussians_ply

    ply_path = Path(ply_path)
    if not ply_path.exists():
        raise InputError(f"{ply_path}: file not found")
    gaussians = read_gaussians_ply(ply_path)  # NaN / inf Gaussians are dropped with a warning
    if len(gaussians) == 0:
        raise InputError(f"{ply_path}: holds no Gaussians")
    run.start_stage("building", overwrite=overwrite)
    run.update_config("building", {"source": "import", "ply": str(ply_path.resolve()),
                                   "sh_degree": gaussians.sh_degree})
    with run.writing_results("building") as result:
        write_gaussians_ply(gaussians, result.dir / "gaussians.ply")
        result.metrics = {"imported_from": str(ply_path.resolve()), "num_gaussians": len(gaussians)}
    log.info("imported %d Gaussians (SH degree %d) from %s into %s",
             len(gaussians), gaussians.sh_degree, ply_path, run.path)
    return gaussians
