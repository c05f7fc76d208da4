"""The field interface: the registry, strict settings, and a plugin field driven by the stage."""

import argparse
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.segment.config import SegmentConfig
from coseg.segment.fields import Field, field_class, field_names


def test_the_built_in_fields_are_registered_with_their_settings_classes():
    from coseg.segment.fields.coseg import CoSegConfig
    from coseg.segment.fields.label_vote import LabelVoteConfig
    from coseg.segment.fields.per_gaussian import PerGaussianConfig

    assert {"coseg", "per-gaussian", "label-vote"} <= set(field_names())
    assert field_class("coseg").config_class is CoSegConfig
    assert field_class("per-gaussian").config_class is PerGaussianConfig
    assert field_class("label-vote").config_class is LabelVoteConfig and not field_class("label-vote").trainable
    with pytest.raises(InputError, match="unknown segmentation field 'vote'.*coseg"):
        field_class("vote")


def test_settings_round_trip_and_unknown_keys_are_an_error():
    config = SegmentConfig(field_config={"use_spatial": False, "loss": {"pi_label": 0.3}}, iterations=7)
    assert config.field_config.use_spatial is False and config.field_config.loss.pi_label == 0.3
    d = config.to_dict()
    assert d["field_config"]["decoder_widths"] == [32, 64, 128, 256]
    again = SegmentConfig.from_dict(d)
    assert again == config and isinstance(again.field_config.decoder_widths, tuple)
    with pytest.raises(InputError, match="unknown segmentation setting.*use_dino"):
        SegmentConfig.from_dict({**d, "use_dino": False})  # a CoSeg setting at the stage level
    with pytest.raises(InputError, match=r"field_config \(coseg\).*use_dinoo"):
        SegmentConfig(field_config={"use_dinoo": False})
    with pytest.raises(InputError, match="loss.*pi"):
        SegmentConfig(field_config={"loss": {"pi": 0.3}})
    with pytest.raises(InputError, match="reg_k"):
        SegmentConfig(field="label-vote", field_config={"reg_k": 3})
    with pytest.raises(InputError, match="takes PerGaussianConfig"):
        SegmentConfig(field="per-gaussian", field_config=config.field_config)


def test_cli_options_of_the_coseg_field_are_refused_for_another_field():
    from coseg.cli.segment import _segment_args, config_from_args

    p = argparse.ArgumentParser()
    _segment_args(p)
    config = config_from_args(p.parse_args(["--no-spatial", "--pi-label", "0.7", "--extractor", "appearance"]))
    assert config.field == "coseg" and config.field_config.use_spatial is False
    assert config.field_config.loss.pi_label == 0.7 and config.field_config.extractor == "appearance"
    assert config_from_args(p.parse_args(["--field", "per-gaussian"])).field == "per-gaussian"
    with pytest.raises(InputError, match="--loss, --no-dino: settings of --field coseg, not of --field label-vote"):
        config_from_args(p.parse_args(["--field", "label-vote", "--no-dino", "--loss", "ce"]))


@dataclass
class _PriorConfig:
    """Settings of the test field."""

    lr: float = 0.1
    """Adam learning rate."""


class PriorField(Field):
    """A plugin field: one learnable class prior for every Gaussian, fitted to the label histogram."""

    config_class = _PriorConfig

    def prepare(self):
        from coseg.segment.prepare import collect_labels, label_index_maps

        cams = self.inputs.cameras
        labels = collect_labels(self.inputs.scene, cams)
        self.class_ids = labels.class_ids
        self.maps = list(label_index_maps(self.inputs.scene, cams, labels).values())
        self.kept = np.arange(len(self.inputs.gaussians), dtype=np.int64)
        self.prior = torch.nn.Parameter(torch.zeros(len(self.class_ids)))
        self.info["learnable_params_mb"] = 0.0
        yield {"stage": "prior"}

    def param_groups(self):
        return [{"params": [self.prior], "lr": self.config.lr}]

    @property
    def num_views(self):
        return len(self.maps)

    def train_step(self, view):
        ids = self.maps[view].reshape(-1)
        ids = ids[ids >= 0]
        loss = torch.nn.functional.cross_entropy(self.prior.expand(len(ids), -1), ids)
        return loss, {"pix": float(loss.detach())}

    def infer(self):
        return self.prior.detach().expand(len(self.kept), -1).numpy().copy()

    def state_dict(self):
        return {**super().state_dict(), "prior": self.prior.detach().clone()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        with torch.no_grad():
            self.prior.copy_(state["prior"])


def test_a_field_registered_as_a_plugin_is_trained_and_stored_by_the_stage(tmp_path, monkeypatch):
    from coseg.gaussians import Gaussians
    from coseg.io.ply import read_gaussians_ply, read_point_cloud, write_gaussians_ply
    from coseg.plugins import registry
    from coseg.readers import read_scene
    from coseg.run import RunDir
    from coseg.segment.stage import load_segmentation, segment
    from coseg.synth import SynthConfig, generate

    reg = registry()
    # a copy of the table for this test: the process-wide registry is unchanged afterwards
    monkeypatch.setattr(reg, "_plugins", {k: dict(v) for k, v in reg._plugins.items()})
    reg.add("segmentation_field", "prior", PriorField)
    scene = tmp_path / "scene"
    generate(scene, SynthConfig(views=4, test_views=1, width=32, height=24, points=300, seed=2))
    xyz, rgb = read_point_cloud(scene / "points3d.ply")
    run = RunDir.create(tmp_path / "run", scene)
    write_gaussians_ply(Gaussians.from_points(xyz, rgb, scale=0.05, opacity=0.9), run.gaussians_path)
    records = list(segment(run.path, SegmentConfig(field="prior", iterations=40, log_every=20)))
    assert [r["stage"] for r in records] == ["prior", "train", "train", "infer", "done"]
    seg = load_segmentation(run.path)
    s = read_scene(scene)
    ids = np.concatenate([s.load_labels(c).ravel() for c in s.train_cameras])
    most_common = np.bincount(ids[ids < 255]).argmax()
    assert np.all(seg["class_ids"][seg["logits"].argmax(1)] == most_common)
    assert np.all(read_gaussians_ply(run.path / "segmented.ply").segments == most_common)
    assert run.read_config()["segmentation"]["field_config"] == {"lr": 0.1}
