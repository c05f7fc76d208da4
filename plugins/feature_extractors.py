"""Built-in feature extractors: "dino" (DINO ViT, needs local weights) and "appearance"."""

from __future__ import annotations


def register(registry) -> None:
    """Add the built-in feature extractors to `registry`."""
    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.dino import DinoExtractor

    registry.add("feature_extractor", "dino", DinoExtractor())
    registry.add("feature_extractor", "appearance", AppearanceExtractor())
