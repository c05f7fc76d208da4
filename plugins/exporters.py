"""Built-in exporters: 3DGS PLY (with segments), plain 3DGS PLY, and .splat.

Each exporter has a ``suffix`` (lower-case, with the dot) and
``export(gaussians, path, **options)``. When several share a suffix, the
first registered ("ply") is the default for that suffix.
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


def register(registry) -> None:
    """Add the "ply", "ply-plain" and "splat" exporters."""
    registry.add("exporter", "ply", PlyExporter("inria"))
    registry.add("exporter", "ply-plain", PlyExporter("plain"))
    registry.add("exporter", "splat", SplatExporter())
