"""Built-in exporters: 3DGS PLY (with segments), plain 3DGS PLY, compressed PLY, .spz and .splat.

Each exporter has a ``suffix`` (lower-case, with the dot) and
``export(gaussians, path, **options)``. When several share a suffix, the
first registered ("ply") is the default for that suffix; a longer suffix
that the file name ends with (".compressed.ply") wins over a shorter one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coseg.gaussians import Gaussians


@dataclass(frozen=True)
class PlyExporter:
    """3DGS PLY writer (`coseg.io.ply.write_gaussians_ply`).

    Attributes:
        layout: "inria" (official properties + ``segment`` + extras) or "plain"
            (exactly the official properties, for viewers that reject others).
    """

    layout: str
    suffix: str = ".ply"

    def export(self, gaussians: Gaussians, path: str | Path, *, with_segments: bool = True) -> None:
        """Write `gaussians` to `path`; `with_segments` applies to the inria layout."""
        from coseg.io.ply import write_gaussians_ply

        write_gaussians_ply(gaussians, path, layout=self.layout, with_segments=with_segments)


@dataclass(frozen=True)
class SplatExporter:
    """antimatter15 .splat writer (`coseg.io.splat.write_splat`): DC colour only, no segments."""

    suffix: str = ".splat"

    def export(self, gaussians: Gaussians, path: str | Path) -> None:
        """Write `gaussians` to `path`."""
        from coseg.io.splat import write_splat

        write_splat(gaussians, path)


@dataclass(frozen=True)
class CompressedPlyExporter:
    """PlayCanvas / SuperSplat compressed PLY (`coseg.io.compressed_ply`): SH kept quantised, no segments."""

    suffix: str = ".compressed.ply"

    def export(self, gaussians: Gaussians, path: str | Path) -> None:
        """Write `gaussians` to `path`."""
        from coseg.io.compressed_ply import write_compressed_ply

        write_compressed_ply(gaussians, path)


@dataclass(frozen=True)
class SpzExporter:
    """Niantic .spz version 3 (`coseg.io.spz.write_spz`): SH up to degree 3 quantised, no segments."""

    suffix: str = ".spz"

    def export(self, gaussians: Gaussians, path: str | Path) -> None:
        """Write `gaussians` to `path`."""
        from coseg.io.spz import write_spz

        write_spz(gaussians, path)


def register(registry) -> None:
    """Add the "ply", "ply-plain", "ply-compressed", "spz" and "splat" exporters."""
    registry.add("exporter", "ply", PlyExporter("inria"))
    registry.add("exporter", "ply-plain", PlyExporter("plain"))
    registry.add("exporter", "ply-compressed", CompressedPlyExporter())
    registry.add("exporter", "spz", SpzExporter())
    registry.add("exporter", "splat", SplatExporter())
