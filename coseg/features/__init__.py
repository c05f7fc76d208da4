"""2D feature extractors (4 scales each) and their PCA reduction.

- `dino`: DINO / DINOv2 ViT in plain torch (`DinoExtractor`), weights from a
  path or the torch hub cache, never downloaded.
- `appearance`: weight-free multi-scale colour/texture/position cues
  (`AppearanceExtractor`), the fallback when no DINO weights are present.
- `pca`: streaming PCA to 64-d + L2 normalisation (`FeatureReducer`).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def select_extractor(name: str = "auto", **options):
    """The extractor to use: `name` ("dino", "appearance" or "auto").

    "auto" takes DINO when its weights are present and otherwise the
    `appearance` extractor, saying so once in the log. The chosen object's
    ``name`` and ``description`` should be recorded in metrics.json.

    Args:
        name: extractor name.
        **options: passed to the DINO extractor (model, weights, blocks) or the
            appearance extractor (position_weight).
    """
    from coseg.errors import InputError
    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.dino import DinoExtractor

    if name == "appearance":
        return AppearanceExtractor(**options)
    if name not in ("dino", "auto"):
        raise InputError(f"unknown feature extractor {name!r} (known: auto, dino, appearance)")
    dino = DinoExtractor(**options)
    if dino.available():
        return dino
    if name == "dino":
        raise InputError(dino.unavailable_reason())
    log.warning("%s; using the weight-free appearance extractor instead", dino.unavailable_reason())
    return AppearanceExtractor()
