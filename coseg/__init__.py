"""CoSeg: the engine of CoSeg Studio (no Qt, no OpenGL).

Scene readers, the Gaussian model and its PLY I/O, the splatting renderer,
the Gaussian Building Stage, feature unprojection, the segmentation field of
CoSegGaussians, evaluation, edits and export. Importable and usable headless.
"""

import os
from pathlib import Path

# numba's and torch's OpenMP threads spin-wait between parallel regions by
# default; on a 2-core machine shared with torch ops (or other processes) that
# made 2 threads 2-4x slower than 1. Passive waiting fixes it. Must be set
# before OpenMP loads, hence here; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenMP layer (libgomp): thread-safe for the studio's worker threads, and it
# avoids numba probing an old TBB that some wheels bring along.
os.environ.setdefault("NUMBA_THREADING_LAYER", "omp")

__version__ = "0.1.0"

#: Run folders record this; a run written by another major format is refused.
RUN_FORMAT_VERSION = 1


def resources_dir() -> Path:
    """The project's `resources/` folder (shaders, icons, configs, weights)."""
    return Path(__file__).resolve().parent.parent / "resources"
