"""Lens distortion and undistortion to a pinhole camera (OpenCV).

Readers record each camera's lens as a `Distortion` in one of OpenCV's two
models; `undistorted_camera` picks the pinhole camera the images are
resampled to and `undistortion_maps` gives OpenCV's per-pixel source
coordinates for that resampling (`coseg.resample` applies them and caches
the results).

Models (the equations are OpenCV's, which COLMAP's camera models of the same
names follow):

- ``OPENCV`` (radial-tangential, OpenCV's "rational" form): coefficients
  ``(k1, k2, p1, p2, k3, k4, k5, k6)``; radial factor
  ``(1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)``.
  COLMAP SIMPLE_RADIAL and RADIAL fill k1 (k2), OPENCV k1 k2 p1 p2,
  FULL_OPENCV all eight; transforms.json k1 k2 k3 p1 p2.
- ``OPENCV_FISHEYE`` (equidistant with a polynomial in theta): ``(k1, k2,
  k3, k4)``; ``theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8)``.
  A fisheye lens with zero coefficients is still not a pinhole.

Pixel centres: OpenCV puts pixel (i, j)'s centre at (i, j), the project (and
COLMAP, nerfstudio, Instant-NGP) at (i + 0.5, j + 0.5); `opencv_K` shifts the
principal point by 0.5 for every OpenCV call, and maps are in OpenCV's pixel
indices.

The undistorted camera keeps the image size. Its focal length and principal
point come from OpenCV (`getOptimalNewCameraMatrix`, or
`fisheye.estimateNewCameraMatrixForUndistortRectify`) with ``alpha`` = 0 by
default: every pixel of the result sees the photo (the border that would be
empty is cropped away), as COLMAP's image_undistorter and nerfstudio do;
``alpha`` = 1 keeps every photo pixel and leaves empty borders, which the
valid-pixel mask keeps out of the losses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from coseg.errors import InputError

if TYPE_CHECKING:
    from coseg.scene import Camera

Model = Literal["OPENCV", "OPENCV_FISHEYE"]

MIN_KEPT = 0.5
"""Undistortion must keep at least this share of the photo and of the result's pixels."""
_CHECK_GRID = 129
"""Samples per side of the grids the coverage checks use."""


@dataclass(frozen=True)
class Distortion:
    """Lens distortion of an image file (see module docstring for the models)."""

    model: Model
    coeffs: tuple[float, ...]
    """OPENCV: (k1, k2, p1, p2, k3, k4, k5, k6); OPENCV_FISHEYE: (k1, k2, k3, k4)."""
    source: str
    """What the input called it, e.g. "COLMAP SIMPLE_RADIAL" (for messages and `coseg info`)."""

    def __post_init__(self) -> None:
        need = 8 if self.model == "OPENCV" else 4
        if len(self.coeffs) != need or not np.isfinite(self.coeffs).all():
            raise InputError(f"{self.source}: expected {need} finite distortion coefficients, got {self.coeffs}")

    @classmethod
    def radial_tangential(cls, source: str, k1: float = 0.0, k2: float = 0.0, p1: float = 0.0,
                          p2: float = 0.0, k3: float = 0.0, k4: float = 0.0, k5: float = 0.0,
                          k6: float = 0.0) -> "Distortion | None":
        """An OPENCV distortion, or None when every coefficient is zero (a pinhole)."""
        coeffs = tuple(float(c) for c in (k1, k2, p1, p2, k3, k4, k5, k6))
        return cls("OPENCV", coeffs, source) if any(coeffs) else None

    @classmethod
    def fisheye(cls, source: str, k1: float = 0.0, k2: float = 0.0, k3: float = 0.0,
                k4: float = 0.0) -> "Distortion":
        """An OPENCV_FISHEYE distortion."""
        return cls("OPENCV_FISHEYE", tuple(float(c) for c in (k1, k2, k3, k4)), source)

    def describe(self) -> str:
        """E.g. "OPENCV k1=0.0578 k2=-0.0805 p1=-0.00098 p2=0.000156 (transforms.json)"."""
        names = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6") if self.model == "OPENCV" \
            else ("k1", "k2", "k3", "k4")
        terms = " ".join(f"{n}={c:.3g}" for n, c in zip(names, self.coeffs) if c)
        return f"{self.model} {terms or '(zero coefficients)'} ({self.source})"


def opencv_K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[3, 3] float64 intrinsics in OpenCV's pixel-centre convention (principal point - 0.5)."""
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])


def project(cam: "Camera", points_cam: np.ndarray) -> np.ndarray:
    """Project camera-frame points through `cam` and its lens.

    Args:
        cam: a camera (`cam.distortion` may be None).
        points_cam: [N, 3] points in the camera frame, z > 0.

    Returns:
        [N, 2] float64 continuous pixel coordinates in the project's convention.
    """
    import cv2

    pts = np.ascontiguousarray(np.asarray(points_cam, np.float64).reshape(-1, 1, 3))
    K, zero = opencv_K(cam.fx, cam.fy, cam.cx, cam.cy), np.zeros(3)
    d = cam.distortion
    if d is not None and d.model == "OPENCV_FISHEYE":
        uv, _ = cv2.fisheye.projectPoints(pts, zero, zero, K, np.array(d.coeffs))
    else:
        uv, _ = cv2.projectPoints(pts, zero, zero, K, np.array(d.coeffs) if d else np.zeros(5))
    return uv.reshape(-1, 2) + 0.5


def undistort_points(cam: "Camera", pixels: np.ndarray, new_K: np.ndarray | None = None) -> np.ndarray:
    """Pixels of `cam`'s photo -> pixels of the pinhole camera `new_K` (OpenCV convention K).

    Args:
        cam: the distorted camera.
        pixels: [N, 2] continuous pixel coordinates (project's convention).
        new_K: [3, 3] target intrinsics from `opencv_K`; None gives normalised coordinates.

    Returns:
        [N, 2] float64 in the project's convention (or normalised image coordinates).
    """
    import cv2

    K = opencv_K(cam.fx, cam.fy, cam.cx, cam.cy)
    src = np.ascontiguousarray(np.asarray(pixels, np.float64).reshape(-1, 1, 2) - 0.5)
    d = cam.distortion
    if d.model == "OPENCV_FISHEYE":
        out = cv2.fisheye.undistortPoints(src, K, np.array(d.coeffs), P=new_K)
    else:
        # more iterations than the default 5: strong lenses need them near the image corners
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4.x names the variant with criteria so
            out = cv2.undistortPointsIter(src, K, np.array(d.coeffs), None, new_K, criteria)
        else:
            out = cv2.undistortPoints(src, K, np.array(d.coeffs), R=None, P=new_K, criteria=criteria)
    out = out.reshape(-1, 2)
    return out + 0.5 if new_K is not None else out


def undistorted_camera(cam: "Camera", alpha: float = 0.0) -> "Camera":
    """The pinhole camera that `cam`'s photo is undistorted to (same size and pose).

    Args:
        cam: a camera with a `Distortion`.
        alpha: 0 = only pixels that see the photo (crop), 1 = every photo pixel kept.

    Returns:
        A pinhole `Camera` whose ``source`` is `cam`.

    Raises:
        InputError: the undistortion would keep less than `MIN_KEPT` of the
            photo or of the result, or the lens model folds over inside the image.
    """
    import dataclasses

    import cv2

    K, size, d = opencv_K(cam.fx, cam.fy, cam.cx, cam.cy), (cam.width, cam.height), cam.distortion
    if d.model == "OPENCV_FISHEYE":
        new_K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            K, np.array(d.coeffs), size, np.eye(3), balance=float(alpha), new_size=size)
    else:
        new_K, _ = cv2.getOptimalNewCameraMatrix(K, np.array(d.coeffs), size, float(alpha), size)
    fx, fy, cx, cy = new_K[0, 0], new_K[1, 1], new_K[0, 2] + 0.5, new_K[1, 2] + 0.5
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise InputError(f"{cam.image_path}: lens {d.describe()} cannot be undistorted to a pinhole camera "
                         "(no finite focal length); check the distortion coefficients")
    out = dataclasses.replace(cam, fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy),
                              distortion=None, source=cam)
    check_coverage(cam, out)
    return out


def check_coverage(src: "Camera", dst: "Camera") -> tuple[float, float]:
    """Share of the photo that `dst` sees, and of `dst`'s pixels that see the photo.

    Raises:
        InputError: either share is below `MIN_KEPT`, or the lens model is not
            invertible (it folds over) inside the part of the photo that is kept.
    """
    u = np.linspace(0.0, 1.0, _CHECK_GRID)  # edges included: a crop of a few pixels shows
    grid = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    # photo pixels -> dst pixels: the share that lands inside dst's image
    photo = grid * (src.width, src.height)
    mapped = undistort_points(src, photo, opencv_K(dst.fx, dst.fy, dst.cx, dst.cy))
    kept_photo = _inside(mapped, dst.width, dst.height)
    # dst pixels -> photo pixels (the direction the resampling maps use)
    rays = np.column_stack([(grid[:, 0] * dst.width - dst.cx) / dst.fx,
                            (grid[:, 1] * dst.height - dst.cy) / dst.fy, np.ones(len(grid))])
    seen = project(src, rays)
    sees = _inside(seen, src.width, src.height)
    # a folding lens model maps two rays to one photo pixel: the round trip does not come back
    back = undistort_points(src, seen[sees], opencv_K(dst.fx, dst.fy, dst.cx, dst.cy))
    folded = np.linalg.norm(back - grid[sees] * (dst.width, dst.height), axis=1) > 1.0
    share_photo, share_dst = float(kept_photo.mean()), float(sees.mean())
    lens = src.distortion.describe()
    if folded.mean() > 0.01:
        raise InputError(f"{src.image_path}: lens {lens} folds over inside the image (the model is not "
                         "invertible there); the distortion coefficients do not fit this camera")
    if share_photo < MIN_KEPT or share_dst < MIN_KEPT:
        raise InputError(f"{src.image_path}: lens {lens} is too strong to undistort to a pinhole camera: "
                         f"the result would keep {100 * share_photo:.0f}% of the photo and "
                         f"{100 * share_dst:.0f}% of its pixels would see it (at least "
                         f"{100 * MIN_KEPT:.0f}% each is needed); check the coefficients "
                         "or undistort with another tool")
    return share_photo, share_dst


def _inside(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    return ((pixels[:, 0] >= 0) & (pixels[:, 0] <= width) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= height))


def undistortion_maps(src: "Camera", dst: "Camera") -> tuple[np.ndarray, np.ndarray]:
    """OpenCV remap tables from `src`'s photo to the pinhole `dst` at its size.

    Returns:
        (map_x, map_y), each [dst.height, dst.width] float32 source pixel indices
        (OpenCV convention), for ``cv2.remap``.
    """
    d = src.distortion
    return _maps(d.model, d.coeffs, (src.fx, src.fy, src.cx, src.cy),
                 (dst.fx, dst.fy, dst.cx, dst.cy), (dst.width, dst.height))


@functools.lru_cache(maxsize=4)
def _maps(model: str, coeffs: tuple[float, ...], src_k: tuple[float, ...], dst_k: tuple[float, ...],
          size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    K, new_K = opencv_K(*src_k), opencv_K(*dst_k)
    if model == "OPENCV_FISHEYE":
        mx, my = cv2.fisheye.initUndistortRectifyMap(K, np.array(coeffs), np.eye(3), new_K, size, cv2.CV_32FC1)
    else:
        mx, my = cv2.initUndistortRectifyMap(K, np.array(coeffs), None, new_K, size, cv2.CV_32FC1)
    mx.flags.writeable = my.flags.writeable = False  # shared between callers through the cache
    return mx, my


def valid_pixels(maps: tuple[np.ndarray, np.ndarray], src_size: tuple[int, int]) -> np.ndarray:
    """[H, W] bool: the pixels whose source position lies on the photo.

    Args:
        maps: from `undistortion_maps`.
        src_size: (width, height) of the photo.
    """
    mx, my = maps
    w, h = src_size
    return (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
