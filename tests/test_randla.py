"""RandLA-Net encoder: layer shapes, hierarchy, freezing and checkpoint key mapping."""

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.segment.randla import RandLAConfig, RandLAEncoder, build_hierarchy, relative_position_code
from coseg.segment.randla_weights import load_encoder, map_external_keys, save_encoder


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _points(n=600, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 3)).astype(np.float32)


def test_hierarchy_levels_are_nested_subsets():
    xyz = _points(600)
    h = build_hierarchy(xyz, k=16, rng=np.random.default_rng(3))
    assert [len(p) for p in h.xyz] == [600, 150, 38, 10, 3]
    for n in range(5):
        np.testing.assert_array_equal(xyz[h.point_idx[n]], h.xyz[n])
    for n in range(4):
        assert h.neigh_idx[n].shape == (len(h.xyz[n]), 16)
        # Each point is its own nearest neighbour.
        np.testing.assert_array_equal(h.neigh_idx[n][:, 0], np.arange(len(h.xyz[n])))
        assert h.up_idx[n].shape == (len(h.xyz[n]), 3)
        np.testing.assert_allclose(h.up_w[n].sum(1), 1.0, rtol=1e-5)


def test_relative_position_code():
    xyz = torch.tensor([[0.0, 0, 0], [3.0, 4, 0]])
    neigh = torch.tensor([[1], [0]])
    code = relative_position_code(xyz, neigh)
    assert code.shape == (2, 1, 10)
    torch.testing.assert_close(code[0, 0], torch.tensor([5.0, -3, -4, 0, 0, 0, 0, 3, 4, 0]))


def test_encoder_layer_shapes_and_frozen():
    enc = RandLAEncoder().freeze()
    out = enc.encode(_points(600))
    dims = [(600, 32), (150, 128), (38, 256), (10, 512)]
    for (xyz_n, f_n), (p, c) in zip(out["levels"], dims):
        assert xyz_n.shape == (p, 3) and tuple(f_n.shape) == (p, c)
    assert tuple(out["f_e"].shape) == (3, 512)
    assert not out["f_e"].requires_grad
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.training
    blk = enc.blocks[1]
    assert blk.mlp1.fc.weight.shape == (32, 32)
    assert blk.lse1.fc.weight.shape == (32, 10)
    assert blk.lse2.fc.weight.shape == (32, 32)  # re-encodes the first LSE's output
    assert blk.pool1.score.weight.shape == (64, 64)
    assert blk.pool2.mlp.fc.weight.shape == (64, 64)
    assert blk.mlp2.fc.weight.shape == (128, 64) and blk.shortcut.fc.weight.shape == (128, 32)


def test_tiny_cloud_smaller_than_k():
    out = RandLAEncoder().freeze().encode(_points(5))
    assert [len(x) for x, _ in out["levels"]] == [5, 2, 1, 1]


def _open3d_state(enc: RandLAEncoder) -> dict:
    """A synthetic Open3D-ML RandLANet state dict with its key names and conv shapes."""
    sd, ours = {}, enc.state_dict()
    sub = {"fc": "conv", "bn": "batch_norm"}
    for key, v in ours.items():
        parts = key.split(".")
        if parts[0] == "fc0" or parts[0] == "bn0":
            sd[key] = v
            continue
        if parts[0] == "bottleneck":
            name = f"mlp.{sub[parts[1]]}.{parts[2]}"
        else:
            i, mod = parts[1], parts[2]
            rest = parts[3:]
            if mod in ("lse1", "lse2"):
                name = f"encoder.{i}.{mod}.mlp.{sub[rest[0]]}.{rest[1]}"
            elif rest[0] == "score":
                name = f"encoder.{i}.{mod}.score_fn.0.{rest[1]}"
            elif rest[0] == "mlp":
                name = f"encoder.{i}.{mod}.mlp.{sub[rest[1]]}.{rest[2]}"
            else:
                name = f"encoder.{i}.{mod}.{sub[rest[0]]}.{rest[1]}"
        sd[name] = v[:, :, None, None] if name.endswith("conv.weight") else v
    sd["decoder.0.conv.weight"] = torch.zeros(1024, 256, 1, 1)
    sd["fc1.2.conv.weight"] = torch.zeros(13, 32, 1, 1)
    return sd


def _randomise(enc):
    gen = torch.Generator().manual_seed(0)
    for t in enc.state_dict().values():
        if t.is_floating_point():
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)


def test_open3d_checkpoint_loads_with_same_outputs(tmp_path):
    src = RandLAEncoder(RandLAConfig(in_channels=6))
    _randomise(src)
    src.freeze()
    path = tmp_path / "randlanet_s3dis.pth"
    torch.save({"epoch": 3, "model_state_dict": _open3d_state(src)}, path)
    enc = load_encoder(path)
    assert enc.config.in_channels == 6 and enc.config.layout == "open3d"
    xyz, rgb = _points(300), np.random.default_rng(1).uniform(size=(300, 3)).astype(np.float32)
    a = src.encode(xyz, rgb, rng=np.random.default_rng(2))
    b = enc.encode(xyz, rgb, rng=np.random.default_rng(2))
    torch.testing.assert_close(a["f_e"], b["f_e"])
    torch.testing.assert_close(a["f_s"][0], b["f_s"][0])


def test_ari0u_checkpoint_key_mapping(tmp_path):
    src = RandLAEncoder(RandLAConfig(layout="ari0u"))
    sd = _open3d_state(src)
    sd["fc_start.weight"] = sd.pop("fc0.weight")
    sd["fc_start.bias"] = sd.pop("fc0.bias")
    for k in [k for k in sd if k.startswith("bn0.")]:
        sd["bn_start.0." + k[4:]] = sd.pop(k)
    sd["fc_end.3.conv.weight"] = torch.zeros(6, 32, 1, 1)
    mapped, unknown = map_external_keys({"module." + k: v for k, v in sd.items()})
    assert unknown == []
    assert mapped["blocks.0.lse2.fc.weight"].shape == (8, 10)  # raw 10-d code again
    path = tmp_path / "ari0u.pth"
    torch.save({"model_state_dict": sd}, path)
    enc = load_encoder(path)
    assert enc.config.layout == "ari0u"
    assert enc.blocks[0].pool1.score.bias is None


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = _open3d_state(RandLAEncoder())
    del sd["encoder.2.pool1.score_fn.0.weight"]
    sd["encoder.0.extra.conv.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(InputError, match=r"missing: blocks\.2\.pool1\.score\.weight.*unexpected: encoder\.0\.extra"):
        load_encoder(path)
    with pytest.raises(InputError, match="not found"):
        load_encoder(tmp_path / "nope.pth")


def test_own_format_round_trip(tmp_path):
    enc = RandLAEncoder()
    _randomise(enc)
    save_encoder(enc, tmp_path / "w.pt", source="test")
    back = load_encoder(tmp_path / "w.pt")
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v)


def test_pretraining_data_helpers():
    from types import SimpleNamespace

    from scipy.spatial import cKDTree

    from coseg.segment.pretrain import random_crop, sample_surface_points

    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    piece = lambda z: SimpleNamespace(vertices=square + [0, 0, z], triangles=np.array([[0, 1, 2], [0, 2, 3]]))  # noqa: E731
    big = SimpleNamespace(vertices=square * 3 + [0, 0, 5.0], triangles=np.array([[0, 1, 2], [0, 2, 3]]))
    layout = SimpleNamespace(pieces=[piece(0.0), big], piece_instance=np.array([0, 1]),
                             instance_class=np.array([4, 7]))
    rng = np.random.default_rng(0)
    xyz, lab = sample_surface_points(layout, 5000, rng)
    assert xyz.shape == (5000, 3) and set(np.unique(lab)) == {4, 7}
    np.testing.assert_array_equal(lab == 7, xyz[:, 2] == 5.0)
    # Area-weighted: the 3x3 piece gets about 9/10 of the points.
    assert abs((lab == 7).mean() - 0.9) < 0.03
    assert (xyz[:, :2] >= 0).all() and (xyz[lab == 4, :2] <= 1).all()
    pts, y = random_crop(xyz, lab, cKDTree(xyz), 300, 0.01, rng)
    assert pts.shape == (300, 3) and y.shape == (300,)
    plain, _ = random_crop(xyz, lab, cKDTree(xyz), 300, 0.01, rng, augment=False)
    assert np.linalg.norm(plain, axis=1).min() == 0.0  # centred on a sampled point


def test_encode_scale_changes_only_the_position_code():
    enc = RandLAEncoder().freeze()
    xyz = _points(200)
    a = enc.encode(xyz, rng=np.random.default_rng(0))
    b = enc.encode(xyz, rng=np.random.default_rng(0), scale=2.0)
    np.testing.assert_array_equal(a["hierarchy"].point_idx[3], b["hierarchy"].point_idx[3])
    np.testing.assert_array_equal(b["levels"][1][0], a["levels"][1][0])
    assert not torch.allclose(a["f_e"], b["f_e"])


def test_set_norm_uses_the_point_set_statistics():
    enc = RandLAEncoder(RandLAConfig(set_norm=True))
    _randomise(enc)
    enc.freeze()
    xyz = _points(300)
    a = enc.encode(xyz, rng=np.random.default_rng(0))["f_e"]
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.add_(5.0)
    b = enc.encode(xyz, rng=np.random.default_rng(0))["f_e"]
    torch.testing.assert_close(a, b)
    enc.train()
    with torch.no_grad():
        c = enc.encode(xyz, rng=np.random.default_rng(0))["f_e"]
    torch.testing.assert_close(a, c)


def test_shipped_weights_load():
    from coseg.segment.pretrain_config import SHIPPED_WEIGHTS

    if not SHIPPED_WEIGHTS.exists():
        pytest.skip("resources/weights/randla_synth.pt not present")
    enc = load_encoder(SHIPPED_WEIGHTS)
    assert enc.config.set_norm and enc.config.in_channels == 3
    out = enc.encode(_points(200))
    assert torch.isfinite(out["f_e"]).all()
