"""Per-view quality of instance masks against a scene's ground truth (`coseg labels --evaluate`).

Where the scene has GT instance maps (``gt_instances/<stem>.png``, 0 =
background; the demo scene writes them) every GT instance of a view is
matched to the mask of that view with which its IoU is largest
(`coseg.metrics.best_match_iou`); reported: the mean of those best IoUs over
all (view, instance) pairs and the share of pairs at IoU >= 0.5. Where the
scene has GT class maps (``gt/``), each mask is given the GT class it
overlaps most within its view and the resulting class maps are scored like a
semantic segmentation (mIoU, accuracy): the ceiling of what a class-matched
3D segmentation built from these masks could score if every mask were
associated correctly. Masks per view are reported too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mask_quality(scene, folder: str | Path, cameras=None) -> dict:
    """Scores of the masks in `folder` (one ``<stem>.png`` per view) against `scene`'s GT.

    Returns:
        dict with ``views``, ``masks_per_view`` and, when the GT exists,
        ``best_match_iou``, ``instances_at_iou_0.5``, ``instances`` (pairs scored),
        ``class_matched_miou``, ``class_matched_accuracy``; empty of scores without GT.
    """
    from coseg.metrics import ConfusionMatrix, OverlapTable, best_match_iou, miou, pixel_accuracy, relabel

    folder = Path(folder)
    cams = [c for c in (scene.cameras if cameras is None else cameras) if (folder / f"{c.name}.png").exists()]
    ious: list[float] = []
    counts = []
    conf = ConfusionMatrix(max(scene.classes or {0: ""}) + 1)
    has_classes = False
    for cam in cams:
        masks = scene.load_id_map(cam, folder / f"{cam.name}.png", fill=0)
        counts.append(len(np.unique(masks[masks > 0])))
        inst_path = Path(scene.root) / "gt_instances" / f"{cam.name}.png"
        if inst_path.exists():
            inst = scene.load_id_map(cam, inst_path, fill=0)
            ious.extend(best_match_iou(masks, inst).values())
        gt = scene.load_gt(cam)
        if gt is not None:
            table = OverlapTable()
            table.update(np.where(masks > 0, masks, -1), gt)
            conf.update(relabel(masks, table.majority_classes()), gt)
            has_classes = True
    out: dict = {"views": len(cams), "masks_per_view": round(float(np.mean(counts)), 1) if counts else 0.0}
    if ious:
        arr = np.asarray(ious)
        out.update({"best_match_iou": round(float(arr.mean()), 4),
                    "instances_at_iou_0.5": round(float((arr >= 0.5).mean()), 4), "instances": len(arr)})
    if has_classes:
        out.update({"class_matched_miou": round(miou(conf), 4),
                    "class_matched_accuracy": round(pixel_accuracy(conf), 4)})
    return out
