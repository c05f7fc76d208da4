"""Built-in label generators: "regions" (offline default, a reduced stand-in for SAM) and "sam"."""

from __future__ import annotations


def register(registry) -> None:
    """Add the built-in label generators to `registry`."""
    from coseg.labelgen.regions import RegionGenerator
    from coseg.labelgen.sam_auto import SamGenerator

    registry.add("label_generator", "regions", RegionGenerator())
    registry.add("label_generator", "sam", SamGenerator())
