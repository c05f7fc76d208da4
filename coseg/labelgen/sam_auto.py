"""SAM's automatic mask generation (grid prompting, filtering, NMS) and the `sam` label generator.

The steps of the official ``SamAutomaticMaskGenerator`` with one crop layer
(its default, ``crop_n_layers=0``):

1. a regular grid of ``points_per_side``² single positive points at the
   centres of equal cells of the image;
2. each point prompts the mask decoder on the image embedding (computed once),
   in batches; the 3 multimask outputs of every point are candidates;
3. candidates whose predicted IoU is at most ``pred_iou_thresh`` are dropped,
   then those whose stability score (IoU of the masks thresholded at logit
   +offset and -offset) is below ``stability_score_thresh``;
4. masks are binarised at logit 0, boxed, and duplicates removed by greedy
   box non-maximum suppression (box IoU above ``box_nms_thresh``, higher
   predicted IoU first; `box_nms`).

Differences, documented as reductions: the official small-region clean-up
(filling holes and removing islands below ``min_mask_region_area`` with
OpenCV) is replaced by dropping masks smaller than ``min_area`` (a fraction
of the image); no
multi-crop layers. The masks then become one instance-id map per view
(`paint_masks`): larger masks first, so a part found inside a whole keeps its
own id where it lies.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from coseg.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class SamSettings:
    """Knobs of the automatic mask generator (official defaults except `points_per_batch`)."""

    points_per_side: int = 32
    """Grid points per image side (points_per_side² prompts)."""
    points_per_batch: int = 16
    """Prompts decoded together (memory: 3 full-size float masks per prompt)."""
    pred_iou_thresh: float = 0.88
    """Keep masks whose predicted IoU exceeds this."""
    stability_score_thresh: float = 0.95
    """Keep masks whose stability score reaches this."""
    stability_score_offset: float = 1.0
    """Logit offset of the stability score."""
    box_nms_thresh: float = 0.7
    """Box IoU above which the lower-scored of two masks is a duplicate."""
    min_area: float = 0.0005
    """Masks smaller than this fraction of the image are dropped."""

    def __post_init__(self) -> None:
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise InputError("SAM points_per_side and points_per_batch must be at least 1")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"SAM {name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.min_area < 1.0:
            raise InputError(f"SAM min_area must be in [0, 1) (a fraction of the image), got {self.min_area}")


def point_grid(n: int, hw: tuple[int, int]) -> torch.Tensor:
    """[n², 2] (x, y) pixel coordinates at the centres of an n x n grid of cells over the image."""
    side = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    yy, xx = torch.meshgrid(side * hw[0], side * hw[1], indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def stability_score(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """[B] IoU of (logits > offset) and (logits > -offset) for [B, H, W] logits (one contains the other)."""
    inner = (logits > offset).flatten(1).sum(1)
    outer = (logits > -offset).flatten(1).sum(1)
    return inner / outer.clamp_min(1)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """[B, 4] (x0, y0, x1, y1) inclusive pixel boxes of [B, H, W] bool masks ((0, 0, 0, 0) if empty)."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4)
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]

    def first_last(hit: torch.Tensor, n: int):
        idx = torch.arange(n)
        first = torch.where(hit, idx, n).amin(1)
        last = torch.where(hit, idx, -1).amax(1)
        empty = last < 0
        return first.masked_fill(empty, 0), last.masked_fill(empty, 0)

    y0, y1 = first_last(rows, h)
    x0, x1 = first_last(cols, w)
    return torch.stack([x0, y0, x1, y1], 1).float()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[A, B] IoU of (x0, y0, x1, y1) boxes (corners as given, areas (x1 - x0)(y1 - y0))."""
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-12)


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS: int64 indices of the kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scored box exceeds
    `threshold` (ties in score keep the lower index first, a stable order).
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.argsort(scores, descending=True, stable=True)
    over = box_iou(boxes[order], boxes[order]) > threshold
    alive = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if alive[i]:
            alive[i + 1:] &= ~over[i, i + 1:]
    return order[alive]


def paint_masks(masks: torch.Tensor, min_area: int = 0) -> np.ndarray:
    """[K, H, W] bool masks -> [H, W] int32 ids 1..K' (0 = no mask), larger masks painted first.

    Ids are numbered in painting order; masks left with fewer than `min_area`
    visible pixels (or none) after the smaller ones are painted over them are
    dropped and the ids renumbered without gaps.
    """
    hw = tuple(masks.shape[1:])
    out = np.zeros(hw, np.int32)
    if masks.shape[0] == 0:
        return out
    areas = masks.flatten(1).sum(1)
    order = torch.argsort(areas, descending=True, stable=True).numpy()
    m = masks.numpy()
    for k, i in enumerate(order, start=1):
        out[m[i]] = k
    counts = np.bincount(out.ravel(), minlength=len(order) + 1)
    keep = counts >= max(min_area, 1)
    keep[0] = False
    renumber = np.zeros(len(counts), np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumber[out]


def automatic_masks(sam, image: np.ndarray, s: SamSettings) -> torch.Tensor:
    """All masks SAM finds in one image (steps 1-4 of the module docstring).

    Args:
        sam: a `coseg.labelgen.sam_model.SamModel`.
        image: [H, W, 3] float32 in [0, 1].
        s: settings.

    Returns:
        [K, H, W] bool masks, highest predicted IoU first.
    """
    hw = image.shape[:2]
    embedding = sam.embed_image(image)
    points = point_grid(s.points_per_side, hw)
    kept, scores = [], []
    for start in range(0, len(points), s.points_per_batch):
        logits, iou = sam.predict_points(embedding, points[start:start + s.points_per_batch], hw)
        logits, iou = logits.flatten(0, 1), iou.flatten(0, 1)
        ok = iou > s.pred_iou_thresh
        logits, iou = logits[ok], iou[ok]
        ok = stability_score(logits, s.stability_score_offset) >= s.stability_score_thresh
        masks = logits[ok] > 0.0
        big = masks.flatten(1).sum(1) >= max(s.min_area * hw[0] * hw[1], 1)
        kept.append(masks[big])
        scores.append(iou[ok][big])
    masks, score = torch.cat(kept), torch.cat(scores)
    keep = box_nms(mask_boxes(masks), score, s.box_nms_thresh)
    return masks[keep]


class SamGenerator:
    """The `sam` label generator: SAM's automatic masks painted into one id map per view.

    Args:
        model: "auto" (whatever ViT-B/L/H checkpoint is found), "vit_b", "vit_l" or "vit_h".
        weights: a checkpoint file or a folder holding the official file
            (default: `coseg.labelgen.sam_model.sam_cache_dir`).
        settings: generator knobs.
        sam: an already built model (tests); overrides `model` and `weights`.
    """

    name = "sam"
    description = "Segment Anything automatic masks (grid prompts, IoU/stability filters, box NMS)"

    def __init__(self, model: str = "auto", weights: str | Path | None = None,
                 settings: SamSettings | None = None, sam=None) -> None:
        self.model, self.weights = model, weights
        self.options = settings or SamSettings()
        self._sam = sam
        self._path: Path | None = None

    def configure(self, model: str | None = None, weights: str | Path | None = None, **knobs) -> "SamGenerator":
        """A generator with other options (the registered instance stays as it is)."""
        unknown = sorted(set(knobs) - set(SamSettings.__dataclass_fields__))
        if unknown:
            raise InputError(f"unknown sam option {', '.join(unknown)} (options: model, weights, "
                             f"{', '.join(SamSettings.__dataclass_fields__)})")
        merged = {**asdict(self.options), **{k: v for k, v in knobs.items() if v is not None}}
        return SamGenerator(model or self.model, weights if weights is not None else self.weights,
                            SamSettings(**merged), self._sam)

    def checkpoint(self) -> Path:
        from coseg.labelgen.sam_model import find_checkpoint

        if self._path is None:
            self._path = find_checkpoint(self.model, self.weights)
        return self._path

    def available(self) -> bool:
        if self._sam is not None:
            return True
        try:
            self.checkpoint()
        except InputError:
            return False
        return True

    def unavailable_reason(self) -> str:
        try:
            self.checkpoint()
        except InputError as e:
            return str(e)
        return ""

    def settings(self) -> dict:
        path = None if self._sam is not None else str(self.checkpoint())
        return {"model": self.model, "weights": path, **asdict(self.options)}

    def sam(self):
        """The model, loaded on first use."""
        if self._sam is None:
            from coseg.labelgen.sam_model import load_sam

            self._sam = load_sam(self.checkpoint(), self.model)
            log.info("SAM loaded from %s", self._path)
        return self._sam

    def generate(self, image: np.ndarray) -> np.ndarray:
        """[H, W, 3] float32 in [0, 1] -> [H, W] int32 instance ids (0 = no mask)."""
        masks = automatic_masks(self.sam(), np.asarray(image, np.float32), self.options)
        return paint_masks(masks, round(self.options.min_area * image.shape[0] * image.shape[1]))
