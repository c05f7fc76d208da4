"""Scene reader for COLMAP folders: `sparse/0/{cameras,images,points3D}.{bin,txt}` + `images/`.

Camera models: PINHOLE, SIMPLE_PINHOLE and the distorted SIMPLE_RADIAL,
RADIAL, OPENCV, FULL_OPENCV, OPENCV_FISHEYE, SIMPLE_RADIAL_FISHEYE,
RADIAL_FISHEYE (`coseg.io.colmap.camera_intrinsics`; the images are
undistorted when loaded); other models are an error naming the model.
Several cameras in one model are fine. COLMAP's pose and pixel conventions
are the project's, so poses are used as stored. Registered images missing
from `images/` are left out and reported (`coseg.scene_settings`). Default split: views sorted by image name, every 8th (index % 8 == 0)
is test; `train.txt` / `test.txt` in the scene folder override it.
points3D become the scene's initial points.
"""

from __future__ import annotations

from pathlib import Path

from coseg.errors import InputError
from coseg.io.colmap import camera_intrinsics, find_model_dir, read_model
from coseg.readers import check_pose, every_nth_test, finish_scene
from coseg.scene import Camera, Scene


class ColmapReader:
    """COLMAP sparse reconstructions of undistorted images."""

    name = "colmap"
    layout = "COLMAP (sparse/0/cameras.{bin,txt}, images.{bin,txt} + images/)"

    def detect(self, path: Path) -> bool:
        return find_model_dir(Path(path)) is not None

    def read(self, path: Path) -> Scene:
        root = Path(path)
        model_dir = find_model_dir(root)
        if model_dir is None:
            raise InputError(f"{root}: no COLMAP model (sparse/0/cameras.bin or cameras.txt) found")
        model = read_model(model_dir)
        image_dir = root / "images"
        if not image_dir.is_dir():
            raise InputError(f"{image_dir}: image folder not found (COLMAP scenes keep images in images/)")
        intrinsics: dict[int, tuple] = {}
        cameras, missing = [], []
        for im in sorted(model.images, key=lambda im: im.name):
            image_path = image_dir / im.name
            if not image_path.is_file():
                missing.append(image_path)
                continue
            cam = model.cameras[im.camera_id]
            if im.camera_id not in intrinsics:  # only the cameras images use need a supported model
                intrinsics[im.camera_id] = camera_intrinsics(cam, model.cameras_path)
            fx, fy, cx, cy, lens = intrinsics[im.camera_id]
            w2c = check_pose(im.world_to_camera, f"{model_dir}: image {im.name}")
            cameras.append(Camera(name=Path(im.name).with_suffix("").as_posix(), image_path=image_path,
                                  width=int(cam.width), height=int(cam.height), fx=fx, fy=fy, cx=cx, cy=cy,
                                  world_to_camera=w2c, distortion=lens))
        every_nth_test(cameras)
        points = (model.points_xyz, model.points_rgb) if model.points_xyz is not None else None
        return finish_scene(root, self.name, cameras, points=points, missing=missing)


def register(registry) -> None:
    """Add the COLMAP scene reader."""
    registry.add("scene_reader", ColmapReader.name, ColmapReader())
