"""Which Gaussian file formats coseg reads, and reading any of them.

| format | suffix | reader | keeps |
|---|---|---|---|
| 3DGS PLY (INRIA layout, gsplat, nerfstudio) | `.ply` | `coseg.io.ply.read_gaussians_ply` | everything, `segment`, extras |
| PlayCanvas / SuperSplat compressed PLY | `.ply` (usually `.compressed.ply`) | `coseg.io.compressed_ply` | SH 0-3, quantised |
| Niantic SPZ, versions 1-4 | `.spz` | `coseg.io.spz.read_spz` | SH 0-3, quantised |
| antimatter15 splat | `.splat` | `coseg.io.splat.read_splat` | SH 0, quantised |

A `.ply` is told apart by its header (a ``chunk`` element and packed vertex
properties mean compressed). Writers are exporter plugins
(`plugins/exporters.py`).
"""

from __future__ import annotations

from pathlib import Path

from coseg.errors import InputError
from coseg.gaussians import Gaussians

GAUSSIAN_SUFFIXES = (".ply", ".splat", ".spz")


def gaussian_file_kind(path: str | Path) -> str:
    """"3DGS PLY" | "compressed PLY" | "spz" | "splat" for a Gaussian file (header read for .ply)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".splat":
        return "splat"
    if suffix == ".spz":
        return "spz"
    if suffix == ".ply":
        from coseg.io.compressed_ply import is_compressed_ply
        from coseg.io.ply import read_ply_header

        return "compressed PLY" if is_compressed_ply(read_ply_header(path)) else "3DGS PLY"
    raise InputError(f"{path}: not a Gaussian file (expected {', '.join(GAUSSIAN_SUFFIXES)})")


def read_gaussian_file(path: str | Path, keep_nonfinite: bool = False) -> tuple[Gaussians, str]:
    """Read any supported Gaussian file; returns the model and its `gaussian_file_kind`.

    Gaussians with NaN or inf parameters are dropped with one warning giving the
    count (docs/data-safety.md), unless `keep_nonfinite` (to count them).

    Raises:
        InputError: unknown suffix, or the reader's one-line error.
    """
    path = Path(path)
    kind = gaussian_file_kind(path)
    if kind == "splat":
        from coseg.io.splat import read_splat

        g = read_splat(path, keep_nonfinite=True)
    elif kind == "spz":
        from coseg.io.spz import read_spz

        g = read_spz(path)
    else:
        from coseg.io.ply import read_gaussians_ply

        g = read_gaussians_ply(path, keep_nonfinite=True)
    return (g if keep_nonfinite else g.without_nonfinite(str(path))), kind
