"""`coseg segment` feature options: --dino-model reaches the config; bad DINO weights are one line."""

import numpy as np
import pytest
import torch

from coseg.cli import build_parser, main
from coseg.cli.segment import config_from_args


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from scipy.spatial import cKDTree

    from coseg.gaussians import Gaussians
    from coseg.io.ply import read_point_cloud, write_gaussians_ply
    from coseg.run import RunDir
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("cli")
    generate(root / "scene", SynthConfig(views=2, test_views=1, width=32, height=24, points=500, seed=4))
    xyz, rgb = read_point_cloud(root / "scene" / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    run = RunDir.create(root / "run", root / "scene")
    write_gaussians_ply(Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9),
                        run.gaussians_path)
    return root / "run"


def test_dino_model_and_extractor_reach_the_config():
    args = build_parser().parse_args(["segment", "RUN", "--extractor", "dino", "--dino-model", "dinov2_vits14",
                                      "--dino-weights", "w.pth"])
    config = config_from_args(args).field_config
    assert (config.extractor, config.dino_model, config.dino_weights) == ("dino", "dinov2_vits14", "w.pth")
    assert config_from_args(build_parser().parse_args(["segment", "RUN"])).field_config.extractor == "auto"


def test_feature_norm_and_logit_regulariser_reach_the_config():
    args = build_parser().parse_args(["segment", "RUN", "--feature-norm", "rms", "--lambda-logits", "0.3"])
    config = config_from_args(args).field_config
    assert (config.feature_norm, config.loss.lambda_logits) == ("rms", 0.3)


def test_missing_dino_weights_path_is_one_line(tiny_run, tmp_path, capsys):
    absent = tmp_path / "absent.pth"
    assert main(["segment", str(tiny_run), "--dino-weights", str(absent), "--seg-iterations", "1"]) == 1
    err = capsys.readouterr().err.strip()
    # the pipeline checks every input file before the first stage (coseg.io.safety.input_files)
    assert err == f"coseg segment: error: --dino-weights {absent}: file not found"


def test_checkpoint_of_another_architecture_is_one_line(tiny_run, tmp_path, capsys):
    from coseg.features.dino import ViTConfig, VisionTransformer

    path = tmp_path / "small_vit.pth"
    torch.save(VisionTransformer(ViTConfig(dim=32, depth=4, heads=2, pretrain_size=32)).state_dict(), path)
    assert main(["segment", str(tiny_run), "--extractor", "dino", "--dino-weights", str(path),
                 "--seg-iterations", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"coseg segment: error: {path}: this ViT checkpoint is not the vits8 architecture: "
                          "dim 32 (expected 384), depth 4 (expected 12)")
    assert err.endswith("it fits none of vits8, vitb8, dinov2_vits14, dinov2_vits14_reg")
