"""`coseg labels SCENE`: raw zero-shot instance masks for every image, from a label-generator plugin.

Writes ``SCENE/masks/`` when the scene has none, else ``--out DIR`` (rules in
`coseg.labelgen.write` and docs/labels.md), with a per-view progress bar;
Ctrl-C stops after the current image and a re-run resumes. Where the scene
has ground truth, the masks' per-view quality is printed and recorded in the
set's ``labels.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_generator_args(p) -> None:
    """The generator choice and its main knobs (shared with `coseg run`)."""
    g = p.add_argument_group("label generation")
    g.add_argument("--generator", default="auto",
                   help='label generator plugin: "auto" (sam when its weights are present, else the offline '
                        '"regions"), "regions", "sam" or a third-party name')
    g.add_argument("--gen-features", metavar="NAME", help="regions: feature extractor (default auto)")
    g.add_argument("--sam-model", choices=["auto", "vit_b", "vit_l", "vit_h"], help="sam: architecture")
    g.add_argument("--sam-weights", type=Path, metavar="PATH",
                   help="sam: checkpoint file or folder (default $COSEG_SAM_DIR or the torch hub cache)")
    g.add_argument("--points-per-side", type=int, help="sam: grid points per image side (default 32)")
    g.add_argument("--pred-iou-thresh", type=float, help="sam: predicted-IoU filter (default 0.88)")
    g.add_argument("--stability-thresh", type=float, help="sam: stability-score filter (default 0.95)")
    g.add_argument("--min-area", type=float,
                   help="smallest mask kept, a fraction of the image (default 0.0005)")
    g.add_argument("--gen-set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other generator setting, e.g. --gen-set merge_k=0.08 (repeatable)")


def add_parser(sub) -> None:
    p = sub.add_parser("labels", help="raw zero-shot instance masks for every image of a scene",
                       description="Run a label generator on every image of SCENE and write one instance-id "
                                   "PNG per image (0 = no mask) with a labels.json provenance.")
    p.add_argument("scene", type=Path, help="scene folder")
    p.add_argument("--out", type=Path, help="mask folder to write (default SCENE/masks when it does not exist)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a mask set coseg wrote earlier there (kept as <folder>.previous)")
    from coseg.cli.scene_options import add_scene_options

    add_scene_options(p, cache=False)  # masks are made at the working resolution, as coseg build reads it
    add_generator_args(p)
    p.set_defaults(func=run)


def generator_from_args(args):
    """The configured label generator named by the arguments."""
    from coseg.labelgen import select_generator

    options = {"features": args.gen_features, "model": args.sam_model,
               "weights": None if args.sam_weights is None else str(args.sam_weights),
               "points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
               "stability_score_thresh": args.stability_thresh, "min_area": args.min_area}
    for item in args.gen_set:
        key, sep, value = item.partition("=")
        if not sep:
            from coseg.errors import InputError

            raise InputError(f"--gen-set {item!r}: expected KEY=VALUE")
        options[key.strip()] = _value(value.strip())
    return select_generator(args.generator, **{k: v for k, v in options.items() if v is not None})


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(_value(t) for t in text.split(","))
    return text


def drive_labels(scene, generator, folder: Path, overwrite: bool = False, cameras=None) -> dict:
    """Run `generate_labels` with a progress bar and Ctrl-C handling; returns the final record."""
    from tqdm import tqdm

    from coseg.cli.stopping import stop_on_sigint
    from coseg.labelgen.write import generate_labels

    last: dict = {}
    with stop_on_sigint("image") as stop:
        bar = None
        for rec in generate_labels(scene, generator, folder, cameras, overwrite, stop):
            if rec["stage"] == "labels":
                if bar is None:
                    bar = tqdm(total=rec["views"], unit="img", dynamic_ncols=True, desc=f"labels ({generator.name})")
                bar.update(1)
                bar.set_postfix(masks=rec["masks"], refresh=False)
            last = rec
        if bar is not None:
            bar.close()
    return last


def run(args) -> int:
    from coseg.labelgen.quality import mask_quality
    from coseg.labelgen.write import PROVENANCE, read_provenance
    from coseg.readers import read_scene

    from coseg.cli.scene_options import settings_from_args

    scene = read_scene(args.scene, settings=settings_from_args(args))
    generator = generator_from_args(args)
    folder = Path(args.out) if args.out is not None else Path(scene.root) / "masks"
    last = drive_labels(scene, generator, folder, args.overwrite)
    if last.get("stage") == "stopped":
        print(f"stopped; the finished images are kept in {last['folder']} (run the same command to resume)")
        return 130
    quality = mask_quality(scene, folder)
    if len(quality) > 2:
        from coseg.io.atomic import write_json_atomic

        record = read_provenance(folder) or {}
        record["quality"] = quality
        write_json_atomic(folder / PROVENANCE, record)
    print(f"{last['views']} images -> {folder} ({last['masks_per_image']} masks per image, "
          f"{last['seconds_per_image']} s per image; {len(last['empty'])} without any mask)")
    for key, value in quality.items():
        print(f"  {key:<24} {value}")
    return 0
