"""Time per image of each 2D feature extractor, side by side in one process.

Usage:
    python benchmarks/feature_extraction.py [SCENE] [--images N] [--threads T] [--json OUT]

Extractors: `appearance` (weight-free), `efficientnet` (the shipped ImageNet
EfficientNet-Lite0 weights) and `dino` ViT-S/8 with random weights (the time
does not depend on the weights; none are downloaded). Images: the first N
training views of SCENE (default: a fresh 320x240 demo scene from
`coseg synth` in a temporary folder). Each extractor runs once to warm up, then
over the N images; the table gives CPU seconds (process time, all threads) and
wall seconds per image, the feature map shapes and the load average, since the
wall time depends on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def extractors():
    """(name, extractor) of every built-in extractor; DINO with random ViT-S/8 weights."""
    import torch

    from coseg.features.appearance import AppearanceExtractor
    from coseg.features.dino import MODELS, DinoExtractor, VisionTransformer
    from coseg.features.efficientnet import EfficientNetExtractor

    torch.manual_seed(0)
    dino = DinoExtractor(vit=VisionTransformer(MODELS["vits8"][0]).eval())
    return [("appearance", AppearanceExtractor()), ("efficientnet", EfficientNetExtractor()),
            ("dino vits8 (random weights)", dino)]


def time_extractor(extractor, images) -> dict:
    """CPU and wall seconds per image over `images` after one warm-up call."""
    maps = extractor.extract(images[0])
    c0, w0 = time.process_time(), time.perf_counter()
    for image in images:
        extractor.extract(image)
    n = len(images)
    return {"cpu_s": (time.process_time() - c0) / n, "wall_s": (time.perf_counter() - w0) / n,
            "shapes": [list(m.shape) for m in maps]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scene", type=Path, nargs="?", help="scene folder (default: a fresh demo scene)")
    p.add_argument("--images", type=int, default=8, help="images timed per extractor")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    import torch

    from coseg.readers import read_scene

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        scene_dir = args.scene
        if scene_dir is None:
            from coseg.synth import SynthConfig, generate

            scene_dir = Path(tmp) / "scene"
            generate(scene_dir, SynthConfig(views=args.images, test_views=1))
        scene = read_scene(scene_dir)
        images = [scene.load_image(c) for c in scene.train_cameras[:args.images]]
    h, w = images[0].shape[:2]
    print(f"{len(images)} images {w}x{h}, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f} (start)")
    print(f"{'extractor':<30} {'CPU s/image':>12} {'wall s/image':>13}  map shapes")
    rows = []
    for name, extractor in extractors():
        r = {"extractor": name, **time_extractor(extractor, images)}
        rows.append(r)
        shapes = " ".join("x".join(map(str, s)) for s in r["shapes"])
        print(f"{name:<30} {r['cpu_s']:12.3f} {r['wall_s']:13.3f}  {shapes}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} (end)")
    if args.json:
        args.json.write_text(json.dumps({"width": w, "height": h, "threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
