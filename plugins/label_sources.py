"""Built-in label sources: "semantic" label-map folders and SAM-style "instance_masks"."""

from __future__ import annotations

from pathlib import Path


class SemanticLabels:
    """``labels/<stem>.png`` class-id maps, consistent across views."""

    name = "semantic"
    folder = "labels"

    def detect(self, path) -> bool:
        d = Path(path) / self.folder
        return d.is_dir() and any(d.glob("*.png"))

    def load(self, scene, cameras=None, **_):
        from coseg.labels import load_semantic_labels

        return load_semantic_labels(scene, cameras)


class InstanceMasks:
    """``masks/<stem>.png`` per-view instance ids, associated through the built Gaussians."""

    name = "instance_masks"
    folder = "masks"

    def detect(self, path) -> bool:
        d = Path(path) / self.folder
        return d.is_dir() and any(d.glob("*.png"))

    def load(self, scene, cameras=None, dominant=None, iou_threshold: float = 0.3, min_pixels: int = 20,
             folder: str | None = None, **_):
        """`folder`: the mask folder (relative to the scene, or absolute); default ``masks``."""
        from coseg.labels import load_instance_masks

        return load_instance_masks(scene, dominant, cameras, folder or self.folder, iou_threshold, min_pixels)


def register(registry) -> None:
    """Add the built-in label sources to `registry`."""
    registry.add("label_source", "semantic", SemanticLabels())
    registry.add("label_source", "instance_masks", InstanceMasks())
