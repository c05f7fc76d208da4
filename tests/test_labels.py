"""Label sources: semantic label folders and cross-view association of SAM-style instance masks."""

import numpy as np
import pytest

from coseg.errors import InputError
from coseg.io.images import write_png
from coseg.labels import LabelSet, associate_instances, load_instance_masks, load_semantic_labels
from coseg.scene import Camera, Scene

H, W = 24, 36


def _synthetic_views(n_views=4, seed=0):
    """3 objects of 40 Gaussians each; every view sees a random 70% of each object's
    Gaussians in a vertical band, in a random band order, with random instance ids."""
    rng = np.random.default_rng(seed)
    objects = [np.arange(40 * k, 40 * (k + 1)) for k in range(3)]
    masks, dominant, truth = [], [], []
    for _ in range(n_views):
        mask = np.zeros((H, W), np.int32)
        dom = np.full((H, W), -1, np.int64)
        obj_map = np.zeros((H, W), np.int32)
        ids = rng.choice(np.arange(1, 500), size=3, replace=False)
        for band, k in enumerate(rng.permutation(3)):
            cols = slice(band * 12, band * 12 + 10)  # 2 background columns between bands
            seen = rng.choice(objects[k], size=28, replace=False)
            dom[:, cols] = rng.choice(seen, size=(H, 10))
            mask[:, cols] = ids[k]
            obj_map[:, cols] = k + 1
        masks.append(mask)
        dominant.append(dom)
        truth.append(obj_map)
    return masks, dominant, truth


def test_permuted_instance_ids_recover_consistent_ids():
    masks, dominant, truth = _synthetic_views()
    out, k = associate_instances(masks, dominant)
    assert k == 3
    # One global id per object, the same in every view, background stays 0.
    pairs = {(int(t), int(o)) for t_map, o_map in zip(truth, out) for t, o in zip(t_map.ravel(), o_map.ravel())}
    assert {o for t, o in pairs if t == 0} == {0}
    mapping = {}
    for t, o in pairs:
        if t:
            assert mapping.setdefault(t, o) == o
    assert sorted(mapping.values()) == [1, 2, 3]
    # Deterministic: the same input gives the same ids.
    again, _ = associate_instances(masks, dominant)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)


def test_association_threshold_and_small_masks():
    masks, dominant, truth = _synthetic_views()
    # View 3's 2D model merged objects 1 and 2 into one mask: its co-visible IoU
    # with either object's mask elsewhere is about 0.5.
    masks[3][truth[3] == 2] = masks[3][truth[3] == 1][0]
    # At 0.3 it joins one of them, but it cannot chain the two: both already hold masks of
    # views 0-2, and one view's masks are different instances.
    out, k = associate_instances(masks, dominant, iou_threshold=0.3)
    assert k == 3
    assert len(np.unique(out[0][truth[0] == 1])) == 1 and out[0][truth[0] == 1][0] != out[0][truth[0] == 2][0]
    _, k = associate_instances(masks, dominant, iou_threshold=0.6)
    assert k == 4
    masks, dominant, _ = _synthetic_views()
    masks[0][0, 0:2] = 999  # 2-pixel mask: dropped
    out, k = associate_instances(masks, dominant)
    assert k == 3 and out[0][0, 0] == 0


def _scene(tmp_path, with_labels=(True, True, False)):
    cams = []
    for i, has in enumerate(with_labels):
        label = tmp_path / "labels" / f"v{i}.png"
        if has:
            write_png(label, np.full((H, W), i + 1, np.uint8))
        cams.append(Camera(name=f"v{i}", image_path=tmp_path / f"v{i}.png", width=W, height=H,
                           fx=30.0, fy=30.0, cx=W / 2, cy=H / 2, world_to_camera=np.eye(4),
                           label_path=label if has else None))
    return Scene(root=tmp_path, format="test", cameras=cams)


def test_semantic_labels_report_missing_views(tmp_path):
    labels = load_semantic_labels(_scene(tmp_path))
    assert sorted(labels.maps) == ["v0", "v1"] and labels.missing == ["v2"]
    assert labels.ids().tolist() == [1, 2]
    with pytest.raises(InputError, match="no label maps"):
        load_semantic_labels(_scene(tmp_path / "none", (False, False, False)))


def test_instance_masks_from_scene_folder(tmp_path):
    scene = _scene(tmp_path, (False, False, False))
    masks, dominant, truth = _synthetic_views(n_views=3, seed=1)
    for cam, m in zip(scene.cameras, masks):
        write_png(tmp_path / "masks" / f"{cam.name}.png", m.astype(np.uint16))
    with pytest.raises(InputError, match="building stage"):
        load_instance_masks(scene, None)
    labels = load_instance_masks(scene, {c.name: d for c, d in zip(scene.cameras, dominant)})
    assert labels.ignore_id == 0 and labels.ids().tolist() == [1, 2, 3]
    labels.write(tmp_path / "associated")
    from coseg.io.images import read_id_map

    back = read_id_map(tmp_path / "associated" / "v2.png", (H, W))
    np.testing.assert_array_equal(back, labels.maps["v2"])


def test_write_rejects_too_many_ids(tmp_path):
    big = LabelSet(maps={"a": np.full((2, 2), 70000, np.int32)}, source="x")
    with pytest.raises(InputError, match="16-bit"):
        big.write(tmp_path)
    assert not list(tmp_path.iterdir())


def test_label_source_plugins(tmp_path):
    from coseg.plugins import PluginRegistry
    from plugins.label_sources import register

    reg = PluginRegistry()
    register(reg)
    assert reg.names("label_source") == ["semantic", "instance_masks"]
    _scene(tmp_path)
    assert reg.get("label_source", "semantic").detect(tmp_path)
    assert not reg.get("label_source", "instance_masks").detect(tmp_path)
