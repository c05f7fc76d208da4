"""Built-in segmentation fields: "coseg" (the paper's), "per-gaussian" (baseline), "label-vote" (reference)."""

from __future__ import annotations


def register(registry) -> None:
    """Add the built-in segmentation fields to `registry`."""
    from coseg.segment.fields.coseg import CoSegField
    from coseg.segment.fields.label_vote import LabelVoteField
    from coseg.segment.fields.per_gaussian import PerGaussianField

    registry.add("segmentation_field", "coseg", CoSegField)
    registry.add("segmentation_field", "per-gaussian", PerGaussianField)
    registry.add("segmentation_field", "label-vote", LabelVoteField)
