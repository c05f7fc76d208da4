"""How much of a scene's classes a linear map can read from each extractor's 2D features.

Usage:
    python benchmarks/feature_probe.py SCENE [--variants appearance,efficientnet,...] [--views 16]
        [--json OUT]

A diagnostic of the features, not of CoSeg: every 4th training view of SCENE
(up to --views) goes through the extractor and the stage's per-scale PCA; the
4 reduced scales are resized to the image and 3000 random pixels per view
are kept. A linear classifier (Adam, 400 steps) learns the ground-truth class
(gt/ maps) from the first half of those views and is scored on the second
half: pixel accuracy and mIoU. Only training views are used, never the test
views.

Variants: `appearance`, `efficientnet` (the default, short side 480 px),
`efficientnet@N` (short side N px; `@native` keeps the image size), and any of
these with `-local` (the 4 local maps without the pooled global part).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


class LocalOnly:
    """An EfficientNet extractor whose maps lack the global part."""

    def __init__(self, net) -> None:
        self.net = net

    def extract(self, image):
        return self.net.stage_maps(image)[0]


def make_extractor(variant: str):
    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.efficientnet import EfficientNetExtractor

    base, local = variant.removesuffix("-local"), variant.endswith("-local")
    if base == "appearance" and not local:
        return AppearanceExtractor()
    if base.startswith("efficientnet"):
        size = base.partition("@")[2]
        net = EfficientNetExtractor(short_side=None if size == "native" else int(size or 480))
        return LocalOnly(net) if local else net
    raise SystemExit(f"unknown variant {variant!r}")


def pixel_samples(scene, cams, extractor, per_view: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Reduced features [V, per_view, C] at random pixels and their GT classes [V, per_view]."""
    import torch

    from coseg.features.pca import FeatureReducer
    from coseg.segment.prepare import _resize_to

    reducer = FeatureReducer(extractor, dim=64)
    for _ in reducer.fit(lambda k: scene.load_image(cams[k]), len(cams)):
        pass
    xs, ys = [], []
    for i, maps in reducer.transform_views():
        gt = scene.load_gt(cams[i])
        grid = torch.from_numpy(_resize_to(maps, maps[0].shape[:2])).permute(2, 0, 1)[None]
        dense = torch.nn.functional.interpolate(grid, size=gt.shape, mode="bilinear", align_corners=False)
        take = rng.choice(gt.size, per_view, replace=False)
        xs.append(dense[0].flatten(1).T[take].numpy())
        ys.append(gt.reshape(-1)[take])
    return np.stack(xs), np.stack(ys)


def linear_probe(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 400) -> dict:
    """Train on the first half of the views, score on the second: accuracy and mIoU."""
    import torch

    half = len(x) // 2
    xtr, ytr = (torch.tensor(a[:half].reshape(-1, *a.shape[2:])) for a in (x, y))
    xte, yte = (torch.tensor(a[half:].reshape(-1, *a.shape[2:])) for a in (x, y))
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[-1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(10 * xtr), ytr.long()).backward()
        opt.step()
    with torch.no_grad():
        pred = lin(10 * xte).argmax(1)
    ious = [float(((pred == c) & (yte == c)).sum() / ((pred == c) | (yte == c)).sum()) for c in yte.unique()]
    return {"accuracy": float((pred == yte).float().mean()), "miou": float(np.mean(ious))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scene", type=Path)
    p.add_argument("--variants", default="appearance,efficientnet@native,efficientnet,efficientnet-local")
    p.add_argument("--views", type=int, default=16, help="training views used (every 4th)")
    p.add_argument("--pixels", type=int, default=3000, help="random pixels per view")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    import torch

    from coseg.readers import read_scene

    torch.set_num_threads(1)
    scene = read_scene(args.scene)
    cams = scene.train_cameras[::4][:args.views]
    if any(c.gt_path is None for c in cams):
        raise SystemExit(f"{args.scene}: the probe needs ground-truth maps (gt/) of the training views")
    classes = 1 + max(int(scene.load_gt(c).max()) for c in cams)
    print(f"{len(cams)} training views ({len(cams) // 2} fit, {len(cams) - len(cams) // 2} scored), "
          f"{args.pixels} pixels each")
    print(f"{'variant':<28} {'accuracy':>9} {'mIoU':>7}")
    rows = []
    for variant in args.variants.split(","):
        x, y = pixel_samples(scene, cams, make_extractor(variant), args.pixels, np.random.default_rng(0))
        r = {"variant": variant, **linear_probe(x, y, classes)}
        rows.append(r)
        print(f"{variant:<28} {100 * r['accuracy']:9.1f} {100 * r['miou']:7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
