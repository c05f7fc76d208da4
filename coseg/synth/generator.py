"""`generate`: the demo scene folder, ray-cast view by view (the package's entry point, `coseg.synth`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from coseg.io.atomic import write_json_atomic
from coseg.io.ply import write_point_cloud
from coseg.metrics import ConfusionMatrix, miou, pixel_accuracy
from coseg.synth.cameras import make_views
from coseg.synth.config import SynthConfig
from coseg.synth.labels import STUFF, LabelConsistency, confusion_ids, instance_error_rates, simulate_labels
from coseg.synth.layout import build_layout
from coseg.synth.raycast import Renderer
from coseg.synth.view_errors import ViewCorrelatedErrors
from coseg.synth.writer import check_target, staging, write_classes, write_transforms, write_view

log = logging.getLogger(__name__)


def generate(out_dir: str | Path, config: SynthConfig | None = None, *, force: bool = False,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate a demo scene folder.

    Args:
        out_dir: destination folder; must be absent or empty unless `force`.
        config: what to render (defaults: 64 + 16 views of a room at 320x240).
        force: replace an existing scene folder at `out_dir`.
        progress: called as progress(done, total) after every view.

    Returns:
        Summary: {"path", "kind", "seed", "views": {"train", "test"}, "size",
        "classes", "instances_per_class", "raw_label_miou_test",
        "raw_label_miou_train", "raw_label_pixel_accuracy_test", "consistency"
        (see `LabelConsistency.summary`), "view_correlated_errors" (instances per kind,
        `ViewCorrelatedErrors.summary`), "points", "seconds"}.

    Raises:
        InputError: a bad setting or an unusable destination.
    """
    cfg = config or SynthConfig()
    cfg.validate()
    check_target(Path(out_dir).absolute(), force)
    start = time.perf_counter()
    layout = build_layout(cfg.kind, np.random.default_rng([cfg.seed, 0]), cfg.sky)
    views = make_views(layout, cfg.views, cfg.test_views, cfg.width, cfg.height, cfg.hfov_deg,
                       np.random.default_rng([cfg.seed, 1]))
    renderer = Renderer(layout, cfg.texture_detail)
    n_cls = len(layout.classes)
    rates = instance_error_rates(len(layout.instance_class), cfg.seed, cfg.labels)
    confusions = confusion_ids(layout.classes)
    stuff = {k for k, v in layout.classes.items() if v in STUFF}
    correlated = ViewCorrelatedErrors(layout, views, confusions, stuff, cfg.seed, cfg.labels)
    confusion = {"train": ConfusionMatrix(n_cls), "test": ConfusionMatrix(n_cls)}
    consistency = LabelConsistency(layout.instance_class, max(4, int(0.0005 * cfg.width * cfg.height)))
    point_rng = np.random.default_rng([cfg.seed, 4])
    per_view = -(-cfg.points // cfg.views)
    xyz, rgb = [], []
    with staging(Path(out_dir), force) as tmp:
        for i, view in enumerate(views):
            r = renderer.render(view)
            raw = simulate_labels(r.classes, r.instances, layout.instance_class, rates, confusions, stuff,
                                  cfg.seed, i, cfg.labels, correlated.for_view(view.c2w[:3, 3]), r.points)
            write_view(tmp, view, r, raw)
            confusion[view.split].update(raw, r.classes)
            consistency.add(r.instances, raw)
            if view.split == "train":
                hits = np.flatnonzero(r.depth.reshape(-1) > 0)
                pick = point_rng.choice(hits, min(per_view, hits.size), replace=False) if hits.size else hits
                xyz.append(r.points.reshape(-1, 3)[pick] + point_rng.normal(0.0, cfg.point_noise, (pick.size, 3)))
                rgb.append(r.rgb.reshape(-1, 3)[pick] / 255.0)
            if progress is not None:
                progress(i + 1, len(views))
        xyz_all, rgb_all = np.concatenate(xyz)[:cfg.points], np.concatenate(rgb)[:cfg.points]
        write_point_cloud(tmp / "points3d.ply", xyz_all, rgb_all)
        write_classes(tmp, layout.classes)
        write_transforms(tmp, views, cfg.hfov_deg)
        stats = {
            "raw_label_miou_test": miou(confusion["test"]),
            "raw_label_miou_train": miou(confusion["train"]),
            "raw_label_pixel_accuracy_test": pixel_accuracy(confusion["test"]),
            "consistency": consistency.summary(),
            "view_correlated_errors": correlated.summary(),
        }
        counts = np.bincount(layout.instance_class, minlength=n_cls)
        instances = {layout.classes[k]: int(counts[k]) for k in range(n_cls) if counts[k]}
        write_json_atomic(tmp / "synth.json", {"generator": "coseg synth", "config": cfg.to_dict(),
                                               "instances_per_class": instances, **stats})
    seconds = time.perf_counter() - start
    n_test = sum(v.split == "test" for v in views)
    log.info("generated %s: %d train + %d test views at %dx%d, %d classes, raw-label test mIoU %.3f, %.1f s",
             out_dir, len(views) - n_test, n_test, cfg.width, cfg.height, len(layout.classes),
             stats["raw_label_miou_test"], seconds)
    return {"path": str(out_dir), "kind": cfg.kind, "seed": cfg.seed,
            "views": {"train": len(views) - n_test, "test": n_test}, "size": [cfg.width, cfg.height],
            "classes": dict(layout.classes), "instances_per_class": instances, **stats,
            "points": int(len(xyz_all)), "seconds": seconds}
