"""View-correlated label errors of the demo scene (coseg.synth.view_errors) and the noise mixes."""

from types import SimpleNamespace

import numpy as np
import pytest

from coseg.synth import SynthConfig, generate
from coseg.synth.cameras import View, look_at
from coseg.synth.labels import LabelNoiseConfig, confusion_ids, noise_preset, simulate_labels
from coseg.synth.view_errors import ViewCorrelatedErrors, ViewErrors

_CLASSES = {0: "floor", 1: "chair", 2: "sofa", 3: "table"}


def _ring(n=36, radius=3.0):
    """n cameras on a circle around the origin at 1.5 m, looking at the origin."""
    views = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([radius * np.cos(a), radius * np.sin(a), 1.5])
        views.append(View(f"r_{i:04d}", "train", look_at(eye, np.array([0.0, 0.0, 0.5])), 64, 48, 40.0, 40.0, 32, 24))
    return views


def _layout():
    """A floor (instance 0) and a chair (instance 1) at the origin."""
    boxes = np.array([[[-4, -4, -0.01], [4, 4, 0.0]], [[-0.3, -0.3, 0.0], [0.3, 0.3, 1.0]]], np.float64)
    return SimpleNamespace(instance_class=np.array([0, 1], np.int32), instance_boxes=boxes)


def _errors(views, **settings):
    cfg = LabelNoiseConfig(**{"object_sector_probability": 0.0, "part_sector_probability": 0.0,
                              "boundary_bias_probability": 0.0, **settings})
    return ViewCorrelatedErrors(_layout(), views, confusion_ids(_CLASSES), {0}, seed=0, cfg=cfg)


def test_an_object_error_covers_one_contiguous_range_of_viewpoints():
    views = _ring()
    errors = _errors(views, object_sector_probability=1.0, sector_fraction=0.3)
    assert 0 not in errors.object  # floor is never confused as a whole
    wrong = [1 in errors.for_view(v.c2w[:3, 3]).object_class for v in views]
    assert sum(wrong) == round(0.3 * len(views))
    # one run around the ring: the indicator changes value exactly twice
    assert sum(a != b for a, b in zip(wrong, wrong[1:] + wrong[:1])) == 2
    classes = {errors.for_view(v.c2w[:3, 3]).object_class.get(1) for v, w in zip(views, wrong) if w}
    assert len(classes) == 1 and classes <= {2, 3}  # one look-alike class, always the same
    again = _errors(views, object_sector_probability=1.0, sector_fraction=0.3)
    assert [1 in again.for_view(v.c2w[:3, 3]).object_class for v in views] == wrong


def test_boundary_bias_depends_on_the_view_direction():
    views = _ring()
    errors = _errors(views, boundary_bias_probability=1.0, boundary_bias_px=5.0)
    px = [errors.for_view(v.c2w[:3, 3]).bias_px.get(1, 0.0) for v in views]
    assert max(px) == pytest.approx(5.0, abs=0.1) and 0.4 < np.mean(np.array(px) > 0) < 0.6
    assert np.all(np.abs(np.diff(px)) < 1.0)  # smooth: neighbouring viewpoints err alike


def test_object_and_part_errors_in_one_view():
    inst = np.zeros((48, 64), np.int32)
    inst[10:34, 20:44] = 1
    gt = np.array([0, 1], np.uint8)[inst]
    points = np.zeros((48, 64, 3))
    points[..., 0] = np.arange(64)[None, :] / 64.0  # world x grows to the right
    quiet = noise_preset("none")
    whole = ViewErrors(object_class={1: 2}, part_class={}, bias_px={})
    raw = simulate_labels(gt, inst, np.array([0, 1]), np.zeros(2), confusion_ids(_CLASSES), {0}, 0, 0, quiet,
                          whole, points)
    assert np.all(raw[inst == 1] == 2) and np.all(raw[inst == 0] == 0)
    part = ViewErrors(object_class={}, part_class={1: (np.array([1.0, 0, 0]), 0.5, 3)}, bias_px={})
    raw = simulate_labels(gt, inst, np.array([0, 1]), np.zeros(2), confusion_ids(_CLASSES), {0}, 0, 0, quiet,
                          part, points)
    right = (inst == 1) & (points[..., 0] > 0.5)
    assert np.all(raw[right] == 3) and np.all(raw[(inst == 1) & ~right] == 1)
    bias = ViewErrors(object_class={}, part_class={}, bias_px={1: 3.0})
    raw = simulate_labels(gt, inst, np.array([0, 1]), np.zeros(2), confusion_ids(_CLASSES), {0}, 0, 0, quiet,
                          bias, points)
    grown = raw != gt
    assert grown.any() and np.all(raw[grown] == 1) and not grown[12:32, 22:42].any()


def test_presets():
    assert noise_preset("mixed") == LabelNoiseConfig()
    per_view = noise_preset("per-view")
    assert per_view.object_sector_probability == per_view.part_sector_probability == 0.0
    # alone, each kind has its full strength; the default mix weakens both
    assert per_view.confusion_mean == 0.15 > LabelNoiseConfig().confusion_mean
    correlated = noise_preset("correlated", sector_fraction=0.25)
    assert correlated.confusion_mean == 0.0 and correlated.sector_fraction == 0.25
    assert correlated.object_sector_probability == 0.3 > LabelNoiseConfig().object_sector_probability
    with pytest.raises(ValueError, match="unknown label-noise mix"):
        noise_preset("some")


def test_a_correlated_scene_relabels_whole_objects_with_look_alikes(tmp_path):
    import imageio.v3 as iio

    cfg = SynthConfig(seed=4, views=24, test_views=2, width=48, height=36, points=300,
                      labels=noise_preset("correlated", object_sector_probability=1.0, part_sector_probability=0.0,
                                          boundary_bias_probability=0.0))
    summary = generate(tmp_path / "scene", cfg)
    assert summary["view_correlated_errors"]["object_sector_instances"] > 5
    confusions = confusion_ids({int(k): v for k, v in summary["classes"].items()})
    changed_views = 0
    for gt_path in sorted((tmp_path / "scene" / "gt").glob("*.png")):
        gt = iio.imread(gt_path)
        raw = iio.imread(tmp_path / "scene" / "labels" / gt_path.name)
        changed = gt != raw
        changed_views += int(changed.any())
        # no per-view noise is left: every changed pixel took a look-alike of its true class
        assert all(int(r) in confusions[int(g)] for g, r in zip(gt[changed], raw[changed]))
    assert 0 < changed_views
    assert summary["raw_label_miou_test"] < 1.0
