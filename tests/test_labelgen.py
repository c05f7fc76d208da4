"""Label generators: the plugin kind, the offline `regions` generator, writing masks safely, scores."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from coseg.errors import CosegError, InputError
from coseg.labelgen import select_generator
from coseg.labelgen.regions import RegionGenerator, RegionSettings
from coseg.labelgen.write import generate_labels, read_provenance
from coseg.metrics import OverlapTable, best_match_iou, relabel
from coseg.plugins import PluginRegistry, registry


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("labelgen") / "scene"
    generate(root, SynthConfig(views=4, test_views=1, width=64, height=48, points=500, seed=2))
    return root


def _scene(path):
    from coseg.readers import read_scene

    return read_scene(path)


class _Blocks:
    """A stand-in generator: 4 quadrant masks, or nothing on the views it is told to miss."""

    name = "blocks"

    def __init__(self, empty=()):
        self.empty, self.calls = set(empty), 0

    def settings(self):
        return {"empty": sorted(self.empty)}

    def generate(self, image):
        self.calls += 1
        h, w = image.shape[:2]
        ids = np.zeros((h, w), np.int32)
        if round(float(image.mean()), 6) in self.empty:
            return ids
        ids[: h // 2, : w // 2], ids[: h // 2, w // 2:], ids[h // 2:, : w // 2], ids[h // 2:, w // 2:] = 1, 2, 3, 4
        return ids


def test_label_generator_is_a_plugin_kind_validated_on_registration():
    reg = PluginRegistry()
    reg.add("label_generator", "blocks", _Blocks())
    assert reg.names("label_generator") == ["blocks"]
    with pytest.raises(ValueError, match="lacks generate"):
        reg.add("label_generator", "bad", object())
    with pytest.raises(ValueError, match="must be callable"):
        reg.add("label_generator", "bad", type("G", (), {"generate": 3})())
    assert {"regions", "sam"} <= set(registry().names("label_generator"))


def test_auto_falls_back_to_regions_without_sam_weights(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("COSEG_SAM_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        gen = select_generator("auto", features="appearance", points_per_side=8)
    assert gen.name == "regions" and gen.options.features == "appearance"
    assert "no SAM checkpoint" in caplog.text
    with pytest.raises(InputError, match="no SAM checkpoint"):
        select_generator("sam")
    with pytest.raises(InputError, match="unknown label generator 'nope'"):
        select_generator("nope")
    with pytest.raises(InputError, match="unknown regions option merge"):
        select_generator("regions", merge=3)


def test_regions_recover_flat_coloured_objects():
    rng = np.random.default_rng(0)
    img = np.full((96, 128, 3), 0.8, np.float32)
    truth = np.zeros((96, 128), np.int32)
    for k, (r, c, colour) in enumerate([(10, 10, (0.8, 0.1, 0.1)), (50, 70, (0.1, 0.2, 0.8)),
                                        (20, 80, (0.1, 0.6, 0.1))], start=1):
        img[r:r + 30, c:c + 40] = colour
        truth[r:r + 30, c:c + 40] = k
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    gen = RegionGenerator(RegionSettings(features="appearance", superpixels=300))
    ids = gen.generate(img)
    assert ids.shape == truth.shape and ids.min() >= 1
    scores = best_match_iou(ids, truth + 1, ignore_ids=(1,))
    assert min(scores.values()) > 0.85, scores
    np.testing.assert_array_equal(gen.generate(img), ids)
    # The feature term may split the flat background (appearance features hold position and
    # centre-surround cues); colour and boundary steps alone keep it whole.
    colour_only = gen.configure(feature_weight=0.0).generate(img)
    assert min(best_match_iou(colour_only, truth + 1, ignore_ids=()).values()) > 0.85
    assert gen.settings()["feature_extractor"] == "appearance"
    with pytest.raises(InputError, match="scales"):
        RegionSettings(scales=(5,))


def test_masks_go_to_scene_masks_once_then_need_overwrite_or_out(tiny_scene, tmp_path):
    scene = _scene(tiny_scene)
    gen = _Blocks()
    records = list(generate_labels(scene, gen, tiny_scene / "masks"))
    assert records[-1]["stage"] == "done" and records[-1]["views"] == len(scene.cameras)
    names = sorted(p.stem for p in (tiny_scene / "masks").glob("*.png"))
    assert names == sorted(c.name for c in scene.cameras)
    prov = read_provenance(tiny_scene / "masks")
    assert prov["completed"] and prov["generator"] == "blocks" and prov["masks_per_image"] == 4.0
    assert not (tiny_scene / ".masks.partial").exists()
    # The set is an input of the scene now: never replaced without --overwrite.
    scene = _scene(tiny_scene)
    with pytest.raises(CosegError, match="pass --overwrite"):
        list(generate_labels(scene, gen, tiny_scene / "masks"))
    list(generate_labels(scene, _Blocks(empty=(-1.0,)), tiny_scene / "masks", overwrite=True))
    assert read_provenance(tiny_scene / "masks.previous")["settings"] == {"empty": []}
    assert read_provenance(tiny_scene / "masks")["settings"] == {"empty": [-1.0]}
    # Inputs are never written: not into images/, not over masks coseg did not write.
    with pytest.raises(CosegError, match="refusing to write"):
        list(generate_labels(scene, gen, tiny_scene / "images" / "m"))
    user = tmp_path / "user_masks"
    user.mkdir()
    (user / "a.png").write_bytes(b"x")
    with pytest.raises(CosegError, match="coseg did not write"):
        list(generate_labels(scene, gen, user, overwrite=True))


def test_stopped_generation_resumes_where_it_stopped(tiny_scene, tmp_path):
    class Stop:
        def __init__(self):
            self.n = 0

        def is_set(self):
            self.n += 1
            return self.n >= 2

    scene = _scene(tiny_scene)
    gen = _Blocks()
    out = tmp_path / "m"
    records = list(generate_labels(scene, gen, out, stop_event=Stop()))
    assert records[-1]["stage"] == "stopped" and not out.exists()
    assert gen.calls == 2
    records = list(generate_labels(scene, gen, out))
    assert records[-1]["stage"] == "done" and gen.calls == len(scene.cameras)
    assert sum(r.get("cached", False) for r in records) == 2


def test_bad_generator_output_and_empty_images_are_one_line_each(tiny_scene, tmp_path, caplog):
    scene = _scene(tiny_scene)
    means = [round(float(scene.load_image(c).mean()), 6) for c in scene.cameras]
    with caplog.at_level(logging.WARNING):
        list(generate_labels(scene, _Blocks(empty=means[:1]), tmp_path / "a"))
    assert sum("found no mask in this image" in r.message for r in caplog.records) == 1
    with pytest.raises(InputError, match="found no mask in any of the"):
        list(generate_labels(scene, _Blocks(empty=means), tmp_path / "b"))

    class Wrong(_Blocks):
        def generate(self, image):
            return np.zeros((3, 3), np.int32)

    with pytest.raises(InputError, match="expected integer ids of shape"):
        list(generate_labels(scene, Wrong(), tmp_path / "c"))

    class TooMany(_Blocks):
        def generate(self, image):
            return np.full(image.shape[:2], 70000, np.int64)

    with pytest.raises(InputError, match="more than a 16-bit mask PNG holds"):
        list(generate_labels(scene, TooMany(), tmp_path / "d"))


def test_coseg_labels_cli_writes_masks_and_scores_them(tiny_scene, tmp_path, capsys):
    from coseg.cli import main

    out = tmp_path / "cli_masks"
    rc = main(["labels", str(tiny_scene), "--generator", "regions", "--gen-features", "appearance",
               "--gen-set", "superpixels=200", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "best_match_iou" in printed and "class_matched_miou" in printed
    prov = json.loads((out / "labels.json").read_text())
    assert prov["settings"]["superpixels"] == 200 and 0 < prov["quality"]["best_match_iou"] <= 1
    assert main(["labels", str(tiny_scene), "--out", str(out), "--generator", "regions"]) == 1
    assert "pass --overwrite" in capsys.readouterr().err


def test_best_match_iou_and_class_matching():
    inst = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 3, 3]])
    seg = np.array([[5, 5, 5, 5], [5, 5, 7, 7], [0, 0, 7, 7]])
    scores = best_match_iou(seg, inst)
    assert scores == {1: pytest.approx(4 / 6), 2: pytest.approx(2 / 6), 3: pytest.approx(2 / 4)}
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 1, 1]])
    table = OverlapTable()
    table.update(seg, gt)
    lut = table.majority_classes()
    assert lut[5] == 0 and lut[7] == 1 and lut[1] == -1
    np.testing.assert_array_equal(relabel(seg, lut)[0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="differs"):
        best_match_iou(seg, inst[:2])
