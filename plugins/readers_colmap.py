"""Scene reader for COLMAP folders: `sparse/0/{cameras,images,points3D}.{bin,txt}` + `images/`.

Only undistorted pinhole cameras (PINHOLE, SIMPLE_PINHOLE) are accepted;
COLMAP's pose and pixel conventions are the project's, so poses are used as
stored. Default split: views sorted by image name, every 8th (index % 8 == 0)
is test; `train.txt` / `test.txt` in the scene folder override it.
points3D become the scene's initial points.
"""

from __future__ import annotations

from pathlib import Path

from coseg.errors import InputError
from coseg.io.colmap import ColmapCamera, find_model_dir, read_model
from coseg.readers import check_pose, every_nth_test, finish_scene
from coseg.scene import Camera, Scene


class ColmapReader:
    """COLMAP sparse reconstructions of undistorted images."""

    name = "colmap"
    layout = "COLMAP (sparse/0/cameras.{bin,txt}, images.{bin,txt} + images/)"

    def detect(self, path: Path) -> bool:
        return find_model_dir(Path(path)) is not None

    def read(self, path: Path, downscale: int = 1) -> Scene:
        root = Path(path)
        model_dir = find_model_dir(root)
        if model_dir is None:
            raise InputError(f"{root}: no COLMAP model (sparse/0/cameras.bin or cameras.txt) found")
        model = read_model(model_dir)
        image_dir = root / "images"
        if not image_dir.is_dir():
            raise InputError(f"{image_dir}: image folder not found (COLMAP scenes keep images in images/)")
        cameras = []
        for im in sorted(model.images, key=lambda im: im.name):
            intr = _pinhole(model.cameras[im.camera_id], model.cameras_path)
            image_path = image_dir / im.name
            if not image_path.is_file():
                raise InputError(f"{image_path}: image not found (registered in {model_dir.name}/images)")
            where = f"{model_dir}: image {im.name}"
            w2c = check_pose(im.world_to_camera, where)
            cameras.append(Camera(name=Path(im.name).with_suffix("").as_posix(), image_path=image_path,
                                  world_to_camera=w2c, **intr))
        every_nth_test(cameras)
        points = (model.points_xyz, model.points_rgb) if model.points_xyz is not None else None
        return finish_scene(root, self.name, cameras, downscale, points=points)


def _pinhole(cam: ColmapCamera, path: Path) -> dict:
    """Camera fields (width, height, fx, fy, cx, cy) of a pinhole COLMAP camera."""
    if cam.model == "PINHOLE":
        fx, fy, cx, cy = cam.params
    elif cam.model == "SIMPLE_PINHOLE":
        f, cx, cy = cam.params
        fx = fy = f
    else:
        raise InputError(f"{path}: camera {cam.camera_id} uses the {cam.model} model; only PINHOLE and "
                         "SIMPLE_PINHOLE are supported -- undistort the images first "
                         "(colmap image_undistorter --image_path images --input_path sparse/0 "
                         "--output_path undistorted)")
    return dict(width=int(cam.width), height=int(cam.height), fx=float(fx), fy=float(fy),
                cx=float(cx), cy=float(cy))


def register(registry) -> None:
    """Add the COLMAP scene reader."""
    registry.add("scene_reader", ColmapReader.name, ColmapReader())
