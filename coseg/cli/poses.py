"""`coseg poses PHOTOS --out SCENE`: cameras from photos alone (structure from motion, pycolmap).

One progress bar per phase (SIFT extraction, matching, mapping). Ctrl-C stops
between chunks and leaves SCENE as it was.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    from coseg.poses.config import CAMERA_MODELS, MATCHERS, PosesConfig

    d = PosesConfig()
    p = sub.add_parser(
        "poses", help="recover cameras from photos alone (structure from motion) -> a COLMAP scene",
        description="SIFT features, matching (every pair, or sequential for video frames) and "
                    "incremental mapping with pycolmap on the CPU. Writes SCENE/images (copies of the "
                    "registered photos), SCENE/sparse/0 (cameras, poses, points) and SCENE/poses.json. "
                    "The photos are never moved or modified. See docs/scene-formats.md.")
    p.add_argument("photos", type=Path, help="folder of photos taken with one camera")
    p.add_argument("--out", type=Path, required=True, help="scene folder to write (not the photos folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a scene already in --out (kept until the new one is complete)")
    p.add_argument("--matcher", choices=MATCHERS, default=d.matcher,
                   help="image pairs to match: auto (sequential for >= 100 numbered video frames, "
                        "else exhaustive), exhaustive or sequential (auto)")
    p.add_argument("--overlap", type=int, default=d.overlap,
                   help=f"successors each frame is matched with by the sequential matcher ({d.overlap})")
    p.add_argument("--camera-model", choices=CAMERA_MODELS, default=d.camera_model,
                   help=f"COLMAP camera model of all photos; PINHOLE for undistorted photos ({d.camera_model})")
    p.add_argument("--max-image-size", type=int, default=d.max_image_size,
                   help=f"longest side SIFT runs at ({d.max_image_size})")
    p.add_argument("--max-features", type=int, default=d.max_features,
                   help=f"most SIFT features per photo; fewer match faster ({d.max_features})")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads (-1: all cores)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed ({d.seed})")
    p.add_argument("--link", choices=("copy", "symlink"), default=d.link,
                   help="put the registered photos into SCENE/images as copies or symbolic links (copy)")
    p.set_defaults(func=run)


def run(args) -> int:
    from coseg.cli.drive import PosesBars, registration_line
    from coseg.cli.stopping import stop_on_sigint
    from coseg.poses import PosesConfig, recover_poses

    config = PosesConfig(matcher=args.matcher, overlap=args.overlap, camera_model=args.camera_model,
                         max_image_size=args.max_image_size, max_features=args.max_features,
                         threads=args.threads, seed=args.seed, link=args.link)
    bars = PosesBars()
    report: dict = {}
    with stop_on_sigint("chunk") as stop:
        try:
            for rec in recover_poses(args.photos, args.out, config, overwrite=args.overwrite, stop=stop):
                if rec["phase"] == "done":
                    report = rec["report"]
                bars.update(rec)
        finally:
            bars.close()
    print(registration_line(report, Path(args.out) / "sparse" / "0"))
    return 0
