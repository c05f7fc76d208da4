"""CoSeg: the engine of CoSeg Studio (no Qt, no OpenGL).

Scene readers, the Gaussian model and its PLY I/O, the splatting renderer,
the Gaussian Building Stage, feature unprojection, the segmentation field of
CoSegGaussians, evaluation, edits and export. Importable and usable headless.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Run folders record this; a run written by another major format is refused.
RUN_FORMAT_VERSION = 1


def resources_dir() -> Path:
    """The project's `resources/` folder (shaders, icons, configs, weights)."""
    return Path(__file__).resolve().parent.parent / "resources"
