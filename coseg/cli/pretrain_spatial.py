"""`coseg pretrain-spatial`: train the RandLA-Net encoder on procedurally generated rooms.

Writes the encoder in the project's own format (default
``resources/weights/randla_synth.pt``) with its provenance: settings,
validation mIoU / accuracy, wall time and torch version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from coseg.errors import InputError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    from coseg.segment.pretrain_config import SHIPPED_WEIGHTS, PretrainConfig

    d = PretrainConfig()
    p = sub.add_parser("pretrain-spatial", help="pretrain the RandLA-Net spatial encoder on synthetic rooms",
                       description="Train the RandLA-Net encoder with a small segmentation head on points "
                                   "sampled from procedurally generated rooms and save the encoder.")
    p.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS, help="weights file to write (default: %(default)s)")
    p.add_argument("--scenes", type=int, default=d.scenes, help="training rooms (default: %(default)s)")
    p.add_argument("--val-scenes", type=int, default=d.val_scenes, help="held-out rooms (default: %(default)s)")
    p.add_argument("--points-per-scene", type=int, default=d.points_per_scene, help="default: %(default)s")
    p.add_argument("--crop-points", type=int, default=d.crop_points, help="points per step (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: faster than 2 on a busy 2-core machine)")
    p.add_argument("--force", action="store_true", help="overwrite an existing weights file")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from coseg.cli.options import named_options
    from coseg.segment.pretrain import PretrainConfig, SpatialPretrainer
    from coseg.segment.randla_weights import save_encoder

    if args.out.exists() and not args.force:
        raise InputError(f"{args.out}: already exists (use --force to overwrite)")
    if args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1")
    names = ("scenes", "val_scenes", "points_per_scene", "crop_points", "steps", "lr", "seed")
    with named_options({n: "--" + n.replace("_", "-") for n in names}):
        config = PretrainConfig(**{n: getattr(args, n) for n in names})
    torch.set_num_threads(args.threads)
    trainer = SpatialPretrainer(config)
    score: dict = {}
    with tqdm(total=config.steps, desc="pretrain-spatial", unit="step") as bar:
        for rec in trainer.train_and_score():
            if "step" in rec:
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}")
            else:
                score = rec
    save_encoder(trainer.encoder, args.out, source="coseg pretrain-spatial on coseg.synth rooms",
                 pretrain_config=config.to_dict(), classes=list(trainer.classes.values()),
                 torch_version=str(torch.__version__), **score)
    log.info("spatial encoder written to %s: val mIoU %.3f, accuracy %.3f (%d classes), %.0f s",
             args.out, score["val_miou"], score["val_accuracy"], score["val_classes"], score["train_seconds"])
    return 0
