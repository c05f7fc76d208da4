"""Built-in feature extractors: "dino" (DINO ViT, needs local weights), "efficientnet" (ImageNet
EfficientNet-Lite0, weights shipped with coseg) and "appearance" (weight-free)."""

from __future__ import annotations


def register(registry) -> None:
    """Add the built-in feature extractors to `registry`."""
    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.dino import DinoExtractor
    from coseg.features.efficientnet import EfficientNetExtractor

    registry.add("feature_extractor", "dino", DinoExtractor())
    registry.add("feature_extractor", "efficientnet", EfficientNetExtractor())
    registry.add("feature_extractor", "appearance", AppearanceExtractor())
