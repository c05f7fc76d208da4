"""`coseg poses PHOTOS --out SCENE`: cameras from photos alone (structure from motion, pycolmap).

One progress bar per phase (SIFT extraction, matching, mapping). Ctrl-C stops
between chunks and leaves SCENE as it was.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
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
    add_sfm_args(p)
    p.set_defaults(func=run)


#: `PosesConfig` fields -> their option in `coseg run`, where the photos' stage shares the
#: command line with building and segmentation (`coseg poses` names them without the prefix).
RUN_NAMES = {"threads": "--sfm-threads", "seed": "--sfm-seed"}


def add_sfm_args(p, names: dict[str, str] | None = None) -> None:
    """The structure-from-motion options (`coseg poses`, and `coseg run` on bare photos with `RUN_NAMES`)."""
    from coseg.poses.config import CAMERA_MODELS, MATCHERS, PosesConfig

    d, names = PosesConfig(), names or {}

    def add(field, **kwargs):
        p.add_argument(names.get(field, "--" + field.replace("_", "-")), dest="sfm_" + field,
                       default=getattr(d, field), **kwargs)

    add("matcher", choices=MATCHERS, help="image pairs to match: auto (sequential for >= 100 numbered video "
                                          "frames, else exhaustive), exhaustive or sequential (auto)")
    add("overlap", type=int, help=f"successors each frame is matched with by the sequential matcher ({d.overlap})")
    add("camera_model", choices=CAMERA_MODELS,
        help=f"COLMAP camera model of all photos; PINHOLE for undistorted photos ({d.camera_model})")
    add("max_image_size", type=int, help=f"longest side SIFT runs at ({d.max_image_size})")
    add("max_features", type=int, help=f"most SIFT features per photo; fewer match faster ({d.max_features})")
    add("threads", type=int, help="structure-from-motion CPU threads (-1: all cores)")
    add("seed", type=int, help=f"structure-from-motion random seed ({d.seed})")
    add("link", choices=("copy", "symlink"),
        help="put the registered photos into SCENE/images as copies or symbolic links (copy)")


def sfm_config_from_args(args):
    """The `PosesConfig` of parsed `add_sfm_args` options."""
    from coseg.poses import PosesConfig

    return PosesConfig(matcher=args.sfm_matcher, overlap=args.sfm_overlap, camera_model=args.sfm_camera_model,
                       max_image_size=args.sfm_max_image_size, max_features=args.sfm_max_features,
                       threads=args.sfm_threads, seed=args.sfm_seed, link=args.sfm_link)


def run(args) -> int:
    from coseg.cli.drive import PosesBars, registration_line
    from coseg.cli.stopping import stop_on_sigint
    from coseg.poses import recover_poses

    config = sfm_config_from_args(args)
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
