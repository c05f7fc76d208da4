"""`coseg poses`: photos -> COLMAP scene (pycolmap SfM), its matcher choice, safety and failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coseg.cli import main
from coseg.errors import CosegError, InputError
from coseg.io.safety import OutputRefused
from coseg.poses import (PosesConfig, RegistrationFailed, choose_matcher, image_pairs, list_photos,
                         looks_like_video, recover_poses)
from coseg.poses.sfm import check_destination


def _noise_photos(folder: Path, n: int, size=(96, 72), seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_matcher_choice_video_frames_and_pairs():
    frames = [f"frame_{i:05d}" for i in range(1, 301, 2)]
    assert looks_like_video(frames)
    assert not looks_like_video(["IMG_1", "IMG_2", "DSC_3"])
    assert not looks_like_video(["a", "b", "c"])
    config = PosesConfig()
    assert choose_matcher(frames, config)[0] == "sequential"
    assert choose_matcher(frames[:50], config)[0] == "exhaustive"  # few frames: every pair is cheap
    assert choose_matcher([f"IMG_{i}" for i in range(200)] + ["DSC_1"], config)[0] == "exhaustive"
    assert choose_matcher(frames, PosesConfig(matcher="exhaustive"))[0] == "exhaustive"
    assert len(image_pairs(10, "exhaustive", 3)) == 45
    seq = image_pairs(10, "sequential", 3)
    assert (0, 3) in seq and (0, 4) not in seq and len(seq) == 7 * 3 + 2 + 1


def test_bad_settings_and_photo_folders_are_one_line(tmp_path):
    with pytest.raises(InputError, match="--matcher"):
        PosesConfig(matcher="vocab")
    with pytest.raises(InputError, match="--camera-model"):
        PosesConfig(camera_model="FISHEYE")
    photos = _noise_photos(tmp_path / "two", 2)
    with pytest.raises(InputError, match="2 photo"):
        list_photos(photos)
    mixed = _noise_photos(tmp_path / "mixed", 3)
    Image.new("RGB", (50, 40)).save(mixed / "p9.png")
    with pytest.raises(InputError, match="different sizes.*p9.png: 50x40"):
        list_photos(mixed)
    with pytest.raises(InputError, match="not a folder"):
        list_photos(tmp_path / "missing")


def test_output_may_not_be_in_around_or_equal_to_the_photos(tmp_path):
    photos = _noise_photos(tmp_path / "shoot" / "photos", 3)
    for out in (photos, photos / "scene", tmp_path / "shoot"):
        with pytest.raises(OutputRefused, match="photos folder"):
            check_destination(photos, out, overwrite=False)
    scene = tmp_path / "scene"
    (scene / "sparse").mkdir(parents=True)
    with pytest.raises(CosegError, match="already holds sparse.*--overwrite"):
        check_destination(photos, scene, overwrite=False)
    assert check_destination(photos, scene, overwrite=True) == scene.resolve()


def test_photos_sfm_cannot_register_fail_in_one_line_and_leave_nothing(tmp_path, capsys):
    photos = _noise_photos(tmp_path / "noise", 4)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    with pytest.raises(RegistrationFailed, match=r"registered \d of 4 photos; photos need overlap"):
        for _ in recover_poses(photos, tmp_path / "scene", PosesConfig(threads=1)):
            pass
    assert not any((tmp_path / "scene").iterdir())  # the staging folder is gone, nothing half-written
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert main(["poses", str(photos), "--out", str(tmp_path / "scene"), "--threads", "1"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert len(err) == 1 and err[0].startswith("coseg poses: error:") and "of 4 photos" in err[0]


@pytest.mark.slow
def test_cameras_of_a_textured_synthetic_room_are_recovered_up_to_a_similarity(tmp_path):
    """24 + 4 views of `coseg synth --texture-detail 1` at 320x240 all register. After a robust
    similarity fit (fit, drop cameras off by more than 10 % of the camera spread, refit) at least
    90 % of the cameras match the true ones within 1 % of the spread and 0.5 degrees, and the
    focal length is within 1 %. (Measured: 27 of 28 within 0.8 % and 0.32 degrees; the one
    outlier, r_0021, a close-up of a chair, is registered from 86 points, flagged as weak.)"""
    from coseg.normalize import align_similarity
    from coseg.readers import read_scene

    truth_dir = tmp_path / "synth"
    assert main(["-q", "synth", str(truth_dir), "--views", "24", "--test-views", "4",
                 "--texture-detail", "1"]) == 0
    scene_dir = tmp_path / "scene"
    assert main(["poses", str(truth_dir / "images"), "--out", str(scene_dir), "--camera-model", "PINHOLE"]) == 0
    truth, got = read_scene(truth_dir), read_scene(scene_dir)
    assert got.format == "colmap" and len(got.cameras) == len(truth.cameras) == 28
    assert got.points_xyz is not None and len(got.points_xyz) > 1000
    t = {c.name: c for c in truth.cameras}
    pairs = [(t[c.name], c) for c in got.cameras]
    src = np.stack([c.center for _, c in pairs])
    dst = np.stack([c.center for c, _ in pairs])
    spread = np.linalg.norm(dst - dst.mean(0), axis=1).max()
    sim = align_similarity(src, dst)
    keep = np.linalg.norm(sim.apply_points(src) - dst, axis=1) < 0.1 * spread
    sim = align_similarity(src[keep], dst[keep])
    position_ok = np.linalg.norm(sim.apply_points(src) - dst, axis=1) < 0.01 * spread
    angles = []
    for true_cam, cam in pairs:
        r = sim.apply_camera(cam).world_to_camera[:3, :3] @ true_cam.world_to_camera[:3, :3].T
        angles.append(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
        assert cam.fx == pytest.approx(true_cam.fx, rel=0.01)
    assert (position_ok & (np.array(angles) < 0.5)).mean() >= 0.9
    # The photos themselves were only read.
    assert sorted(p.name for p in (scene_dir / "images").iterdir()) == sorted(
        p.name for p in (truth_dir / "images").iterdir())
