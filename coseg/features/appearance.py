"""The `appearance` extractor: offline, weight-free, multi-scale colour/texture/position cues.

Used by name, or when neither DINO weights nor the EfficientNet-Lite0 package
are present. It is a hand-made substitute for a foundation model (a
simplification: no learned semantics), built from cues that separate surfaces
in indoor scenes:

- colour: CIE Lab (L/100, a/50, b/50), the local mean and standard deviation
  over the scale's window, and a centre-surround contrast (window mean minus
  the mean over a 4x wider window);
- texture: oriented gradient energy of L in 4 orientations (0, 45, 90, 135
  degrees) and the gradient energy of a and b, each averaged over the window
  (square root, so the values are gradient magnitudes);
- position: the pixel's normalised (x, y) in [0, 1], scaled by
  ``position_weight`` (image position differs across views, so it is a weak
  cue after unprojection; it helps separate large uniform regions in a view).

Scale n = 1..4 uses stride t = 1, 2, 4, 8 and a box window of 2t + 1 pixels;
its map holds the features at pixels (t i + t // 2, t j + t // 2), so it has
ceil((H - t // 2) / t) x ceil((W - t // 2) / t) entries. Each scale has 17
channels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, sobel, uniform_filter

STRIDES = (1, 2, 4, 8)
CHANNELS = 17


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB [..., 3] in [0, 1] -> CIE Lab (D65) [..., 3] float32."""
    c = np.asarray(rgb, np.float32)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                    200.0 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


class AppearanceExtractor:
    """Weight-free multi-scale features (see module docstring).

    Args:
        position_weight: scale of the (x, y) position channels.
    """

    name = "appearance"
    description = ("appearance (weight-free): Lab colour mean/std/centre-surround, oriented gradient "
                   "energy, position; strides 1/2/4/8; PCA + L2-normalised")

    def __init__(self, position_weight: float = 0.25) -> None:
        self.position_weight = position_weight

    def available(self) -> bool:
        return True

    def fingerprint(self) -> str:
        """Its one setting: what the features depend on (feature cache key)."""
        return f"appearance position_weight {self.position_weight:g}"

    def extract(self, image: np.ndarray) -> list[np.ndarray]:
        """Multi-scale appearance features of one image.

        Args:
            image: [H, W, 3] float32 in [0, 1].

        Returns:
            4 arrays [h_t, w_t, 17] float32 for t = 1, 2, 4, 8 (sizes in the module docstring).
        """
        img = np.asarray(image, np.float32)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"appearance extractor expects [H, W, 3], got {img.shape}")
        h, w = img.shape[:2]
        lab = rgb_to_lab(np.clip(img, 0.0, 1.0)) / np.array([100.0, 50.0, 50.0], np.float32)
        lum = gaussian_filter(lab[..., 0], 1.0)
        gx, gy = sobel(lum, axis=1) / 8.0, sobel(lum, axis=0) / 8.0
        d1, d2 = (gx + gy) / np.sqrt(2.0), (gx - gy) / np.sqrt(2.0)
        chroma = [sobel(lab[..., c], axis=1) ** 2 + sobel(lab[..., c], axis=0) ** 2 for c in (1, 2)]
        energy = np.stack([gx**2, gy**2, d1**2, d2**2, chroma[0] / 64.0, chroma[1] / 64.0], axis=-1)
        sq = lab**2
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        pos = np.stack([(xs + 0.5) / w, (ys + 0.5) / h], axis=-1) * self.position_weight
        maps = []
        for t in STRIDES:
            win = 2 * t + 1
            mean = uniform_filter(lab, size=(win, win, 1), mode="reflect")
            std = np.sqrt(np.maximum(uniform_filter(sq, size=(win, win, 1), mode="reflect") - mean**2, 0.0))
            surround = uniform_filter(lab, size=(4 * win, 4 * win, 1), mode="reflect")
            tex = np.sqrt(np.maximum(uniform_filter(energy, size=(win, win, 1), mode="reflect"), 0.0))
            sl = (slice(t // 2, None, t), slice(t // 2, None, t))
            feats = np.concatenate([mean[sl], std[sl], mean[sl] - surround[sl], tex[sl], pos[sl]], axis=-1)
            maps.append(np.ascontiguousarray(feats, np.float32))
        return maps
