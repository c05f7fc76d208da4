"""Feature extractors: tiny random DINO ViT through the real loading path, appearance, PCA."""

import re

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.features import select_extractor
from coseg.features.appearance import CHANNELS, AppearanceExtractor
from coseg.features.dino import DinoExtractor, ViTConfig, VisionTransformer, load_vit
from coseg.features.pca import FeatureReducer, fit_pca


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ViTConfig(dim=32, depth=4, heads=2, patch=8, pretrain_size=32)


def _official_names(model: VisionTransformer, dinov2: bool = False) -> dict:
    """Our state dict under the official DINO (or DINOv2) key names."""
    out = {}
    for k, v in model.state_dict().items():
        k = re.sub(r"^blocks\.(\d+)\.(qkv|proj)\.", r"blocks.\1.attn.\2.", k)
        k = re.sub(r"^blocks\.(\d+)\.(fc1|fc2)\.", r"blocks.\1.mlp.\2.", k)
        k = re.sub(r"^blocks\.(\d+)\.(ls1|ls2)$", r"blocks.\1.\2.gamma", k)
        k = k.replace("patch_embed.", "patch_embed.proj.")
        out[k] = v.clone()
    if dinov2:
        out["mask_token"] = torch.zeros(1, model.config.dim)
    return out


def _image(h=40, w=56, seed=0):
    return np.random.default_rng(seed).uniform(size=(h, w, 3)).astype(np.float32)


def test_tiny_vit_official_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VisionTransformer(TINY).eval()
    path = tmp_path / "dino_tiny.pth"
    torch.save(_official_names(model), path)
    loaded = load_vit(path, heads=2)
    assert loaded.config == TINY
    ours = DinoExtractor(vit=model).extract(_image())
    theirs = DinoExtractor(vit=loaded).extract(_image())
    assert len(ours) == 4
    for a, b in zip(ours, theirs):
        assert a.shape == (5, 7, 64)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_extract_concatenates_cls_and_uses_four_blocks():
    torch.manual_seed(0)
    ex = DinoExtractor(vit=VisionTransformer(TINY).eval())
    assert ex.blocks == (1, 2, 3, 4)
    maps = ex.extract(_image(36, 60))  # resized to 40 x 64 (multiples of 8)
    assert [m.shape for m in maps] == [(5, 8, 64)] * 4
    for m in maps:
        cls = m[..., 32:]
        np.testing.assert_allclose(cls, np.broadcast_to(cls[0, 0], cls.shape))
    assert not np.allclose(maps[0], maps[3])
    with pytest.raises(InputError, match="4 numbers"):
        _ = DinoExtractor(vit=ex.vit(), blocks=(1, 2, 9, 4)).blocks


def test_dinov2_layerscale_registers_and_teacher_prefix(tmp_path):
    torch.manual_seed(1)
    cfg = ViTConfig(dim=32, depth=2, heads=2, patch=14, layerscale=True, registers=4, pretrain_size=28)
    model = VisionTransformer(cfg).eval()
    for blk in model.blocks:
        torch.nn.init.uniform_(blk.ls1, 0.1, 1.0)
    sd = {"backbone." + k: v for k, v in _official_names(model, dinov2=True).items()}
    path = tmp_path / "dinov2_tiny.pth"
    torch.save({"teacher": sd, "epoch": 1}, path)
    loaded = load_vit(path, heads=2)
    assert loaded.config.layerscale and loaded.config.registers == 4 and loaded.config.patch == 14
    x = torch.randn(1, 3, 42, 56)
    for (a, ca), (b, cb) in zip(model(x, (1, 2)), loaded(x, (1, 2))):
        assert a.shape == (1, 3, 4, 32)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(ca, cb)


def test_missing_weights_never_download(tmp_path, monkeypatch):
    ex = DinoExtractor(weights=tmp_path / "absent.pth")
    assert not ex.available()
    assert str(tmp_path / "absent.pth") in ex.unavailable_reason()
    with pytest.raises(InputError, match="no DINO weights"):
        ex.extract(_image())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert select_extractor("auto").name == "appearance"
    with pytest.raises(InputError, match=str(tmp_path)):
        select_extractor("dino")
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(2)}, bad)
    with pytest.raises(InputError, match="not a ViT checkpoint"):
        load_vit(bad)


def test_appearance_extractor_shapes_and_cues():
    ex = AppearanceExtractor()
    maps = ex.extract(_image(48, 64))
    assert [m.shape for m in maps] == [(48, 64, CHANNELS), (24, 32, CHANNELS), (12, 16, CHANNELS), (6, 8, CHANNELS)]
    assert all(m.dtype == np.float32 for m in maps)
    flat = np.zeros((32, 32, 3), np.float32)
    flat[:, :16] = [0.8, 0.1, 0.1]
    flat[:, 16:] = [0.1, 0.1, 0.8]
    f = ex.extract(flat)[0]
    # Inside a uniform region std and texture vanish; the two colours differ.
    assert np.abs(f[16, 4, 3:6]).max() < 1e-3 and np.abs(f[16, 4, 9:15]).max() < 1e-3
    assert np.linalg.norm(f[16, 4, :3] - f[16, 28, :3]) > 0.5


def test_pca_recovers_dominant_directions_and_normalises():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(10, 10)))[0][:, :2].T
    x = rng.normal(size=(2000, 2)) * [5.0, 2.0] @ basis + rng.normal(size=(2000, 10)) * 0.01 + 3.0
    p = fit_pca(x, dim=2)
    assert abs(abs(p.components[0] @ basis[0]) - 1) < 1e-3
    assert abs(abs(p.components[1] @ basis[1]) - 1) < 1e-3
    y = p.apply(x.reshape(40, 50, 10))
    assert y.shape == (40, 50, 2)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0, rtol=1e-4)
    assert fit_pca(x, dim=64).components.shape == (10, 10)


@pytest.mark.parametrize("spill", [False, True])
def test_feature_reducer_streams_views(tmp_path, spill):
    images = [_image(24, 32, seed=s) for s in range(3)]
    red = FeatureReducer(AppearanceExtractor(), dim=8, samples_per_view=100,
                         spill_dir=tmp_path / "spill" if spill else None)
    assert list(red.fit(lambda i: images[i], 3)) == [0, 1, 2]
    out = dict(red.transform_views())
    assert sorted(out) == [0, 1, 2]
    assert [m.shape for m in out[1]] == [(24, 32, 8), (12, 16, 8), (6, 8, 8), (3, 4, 8)]
    np.testing.assert_allclose(np.linalg.norm(out[2][0], axis=-1), 1.0, rtol=1e-4)
    direct = red.transform(AppearanceExtractor().extract(images[2]))
    np.testing.assert_allclose(out[2][0], direct[0], atol=2e-2 if spill else 1e-6)
    if spill:
        assert not list((tmp_path / "spill").iterdir())


def test_plugins_registered():
    from coseg.plugins import PluginRegistry
    from plugins.feature_extractors import register

    reg = PluginRegistry()
    register(reg)
    assert reg.names("feature_extractor") == ["dino", "appearance"]
    assert reg.get("feature_extractor", "appearance").available()
