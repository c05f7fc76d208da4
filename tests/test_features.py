"""Feature extractors: tiny random DINO ViTs through the real loading path (official DINO / DINOv2
key names), the architecture check, extractor choice and fingerprints, appearance, PCA."""

import re

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.features import select_extractor
from coseg.features.appearance import CHANNELS, AppearanceExtractor
from coseg.features import dino
from coseg.features.dino import (MODELS, DinoExtractor, ViTConfig, VisionTransformer, check_architecture,
                                 config_from_state, load_vit, map_vit_keys)
from coseg.features.pca import FeatureReducer, fit_pca


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ViTConfig(dim=32, depth=4, heads=2, patch=8, pretrain_size=32)


def _official_names(model: VisionTransformer, dinov2: bool = False, chunks: int = 0) -> dict:
    """Our state dict under the official DINO (or DINOv2) key names.

    DINOv2 checkpoints also carry ``mask_token``; ``chunks`` > 0 writes the block
    keys as DINOv2's FSDP block chunks do (``blocks.<chunk>.<index>.``).
    """
    out = {}
    per_chunk = model.config.depth // chunks if chunks else 0
    for k, v in model.state_dict().items():
        k = re.sub(r"^blocks\.(\d+)\.(qkv|proj)\.", r"blocks.\1.attn.\2.", k)
        k = re.sub(r"^blocks\.(\d+)\.(fc1|fc2)\.", r"blocks.\1.mlp.\2.", k)
        k = re.sub(r"^blocks\.(\d+)\.(ls1|ls2)$", r"blocks.\1.\2.gamma", k)
        k = k.replace("patch_embed.", "patch_embed.proj.")
        if per_chunk:
            k = re.sub(r"^blocks\.(\d+)\.", lambda m: f"blocks.{int(m[1]) // per_chunk}.{m[1]}.", k)
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
    loaded = load_vit(path, model=None, heads=2)
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


@pytest.mark.parametrize("chunks", [0, 2])
def test_dinov2_layerscale_registers_and_teacher_prefix(tmp_path, chunks):
    torch.manual_seed(1)
    cfg = ViTConfig(dim=32, depth=2, heads=2, patch=14, layerscale=True, registers=4, pretrain_size=28)
    model = VisionTransformer(cfg).eval()
    for blk in model.blocks:
        torch.nn.init.uniform_(blk.ls1, 0.1, 1.0)
    sd = {"backbone." + k: v for k, v in _official_names(model, dinov2=True, chunks=chunks).items()}
    assert ("backbone.blocks.1.1.ls1.gamma" if chunks else "backbone.blocks.1.ls1.gamma") in sd
    path = tmp_path / "dinov2_tiny.pth"
    torch.save({"teacher": sd, "epoch": 1}, path)
    loaded = load_vit(path, model=None, heads=2)
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
    assert select_extractor("auto").name == "efficientnet"
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


def test_rms_normalisation_keeps_features_near_the_mean_small():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 6)) * [4.0, 3.0, 2.0, 1.0, 0.5, 0.2] + 7.0
    p = fit_pca(x, dim=6)
    rms = p.apply(x, "rms")
    assert np.sqrt(np.mean(np.sum(rms ** 2, -1))) == pytest.approx(1.0, rel=1e-3)
    # Two vectors a hair from the mean: L2 blows them up to opposite unit vectors, RMS keeps them close.
    near = p.mean + np.array([[1e-3, 0, 0, 0, 0, 0], [-1e-3, 0, 0, 0, 0, 0]], np.float32)
    l2 = p.apply(near, "l2")
    assert np.linalg.norm(l2[0] - l2[1]) > 1.9
    assert np.linalg.norm(p.apply(near, "rms")[0] - p.apply(near, "rms")[1]) < 1e-2
    with pytest.raises(ValueError, match="normalisation"):
        p.apply(x, "whiten")


def test_pca_with_fewer_samples_than_channels_matches_the_covariance_route():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3)) * [9.0, 4.0, 2.0] @ rng.normal(size=(3, 50)) + rng.normal(size=(30, 50)) * 0.1
    p = fit_pca(x, dim=64)  # S = 30 < D = 50: SVD route, at most S components
    assert p.components.shape == (30, 50)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    top = evecs[:, np.argsort(evals)[::-1][:3]].T
    np.testing.assert_allclose(np.abs(np.sum(p.components[:3] * top, axis=1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(p.components @ p.components.T, np.eye(30), atol=1e-5)


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
    assert reg.names("feature_extractor") == ["dino", "efficientnet", "appearance"]
    assert reg.get("feature_extractor", "appearance").available()


def _meta_official_state(config: ViTConfig, dinov2: bool) -> dict:
    """A full-size official state dict with shapes only (meta tensors: no memory, no download)."""
    with torch.device("meta"):
        model = VisionTransformer(config)
    state = _official_names(model, dinov2=False)
    if dinov2:
        state["mask_token"] = torch.empty(1, config.dim, device="meta")
    return state


@pytest.mark.parametrize("name", list(MODELS))
def test_architecture_check_accepts_only_the_named_model(name, tmp_path):
    config, _ = MODELS[name]
    found = config_from_state(map_vit_keys(_meta_official_state(config, name.startswith("dinov2"))))
    assert check_architecture(found, name, tmp_path / "ckpt.pth") == config
    for other in MODELS:
        if other != name:
            with pytest.raises(InputError, match=rf"not the {other} architecture: .*it fits --dino-model {name}$"):
                check_architecture(found, other, tmp_path / "ckpt.pth")


def test_wrong_architecture_checkpoint_is_one_clear_line(tmp_path, monkeypatch):
    # Tiny stand-ins for ViT-S/8 and ViT-B/8 (the real ones are 85 and 330 MB).
    small = ViTConfig(dim=32, depth=4, heads=2, patch=8, pretrain_size=32)
    base = ViTConfig(dim=64, depth=4, heads=4, patch=8, pretrain_size=32)
    monkeypatch.setitem(MODELS, "vits8", (small, "dino_deitsmall8_pretrain.pth"))
    monkeypatch.setitem(MODELS, "vitb8", (base, "dino_vitbase8_pretrain.pth"))
    torch.manual_seed(2)
    path = tmp_path / "dino_vitbase8_pretrain.pth"
    torch.save(_official_names(VisionTransformer(base)), path)
    with pytest.raises(InputError) as e:
        DinoExtractor(model="vits8", weights=path).extract(_image())
    assert str(e.value) == (f"{path}: this ViT checkpoint is not the vits8 architecture: dim 64 (expected 32); "
                            "it fits --dino-model vitb8")
    ex = DinoExtractor(model="vitb8", weights=path)
    assert ex.vit().config == base and ex.vit().blocks[0].heads == 4  # the named model's heads, not dim / 64
    assert [m.shape for m in ex.extract(_image())] == [(5, 7, 128)] * 4


def test_missing_or_unknown_choices_are_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    absent = tmp_path / "absent.pth"
    for name in ("auto", "dino"):
        with pytest.raises(InputError, match=f"^{re.escape(str(absent))}: DINO weights not found"):
            select_extractor(name, dino_weights=absent)
    with pytest.raises(InputError, match="unknown feature extractor 'clip'"):
        select_extractor("clip")
    with pytest.raises(InputError, match="unknown DINO model 'vitl14'"):
        select_extractor("dino", dino_model="vitl14")
    assert select_extractor("appearance").name == "appearance"
    assert select_extractor("efficientnet").name == "efficientnet"
    from coseg.segment.config import SegmentConfig

    with pytest.raises(InputError, match="unknown DINO model 'vitl14'"):
        SegmentConfig(field_config={"dino_model": "vitl14"})
    with pytest.raises(InputError, match="unknown feature extractor 'clip'"):
        SegmentConfig(field_config={"extractor": "clip"})


def test_feature_cache_key_covers_extractor_model_weights_blocks_and_image_size(tmp_path):
    from types import SimpleNamespace

    from coseg.features.efficientnet import EfficientNetExtractor
    from coseg.segment.prepare import feature_cache_key

    gaussians = tmp_path / "gaussians.ply"
    gaussians.write_bytes(b"ply")
    cams = [SimpleNamespace(name=f"v{i}", width=64, height=48) for i in range(3)]
    w1, w2 = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"x": torch.zeros(3)}, w1)
    torch.save({"x": torch.ones(3)}, w2)

    def key(extractor, views=cams):
        return feature_cache_key(gaussians, views, extractor, feature_dim=64, seed=0)

    base = key(DinoExtractor("vits8", weights=w1))
    assert key(DinoExtractor("vits8", weights=w1)) == base
    others = [key(DinoExtractor("vits8", weights=w2)), key(DinoExtractor("vitb8", weights=w1)),
              key(DinoExtractor("vits8", weights=w1, blocks=(2, 4, 6, 8))),
              key(DinoExtractor("vits8", weights=w1), [SimpleNamespace(name=c.name, width=32, height=24) for c in cams]),
              key(AppearanceExtractor()), key(EfficientNetExtractor()), key(EfficientNetExtractor(short_side=240)),
              feature_cache_key(gaussians, cams, DinoExtractor("vits8", weights=w1), 64, 0, norm="rms")]
    assert len({base, *others}) == 1 + len(others)
    torch.save({"x": torch.full((3,), 2.0)}, w1)  # same path, new content
    assert key(DinoExtractor("vits8", weights=w1)) != base
