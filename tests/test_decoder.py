"""Fusion decoder: shapes, ablations, gradients only into the decoder, parameter count."""

import numpy as np
import pytest
import torch

from coseg.segment.decoder import DecoderConfig, FusionDecoder, gather_fusion_inputs, learnable_params_mb
from coseg.segment.fields.per_gaussian import IdentityField
from coseg.segment.losses import CoSegLossConfig, coseg_loss, js_loss, kl_regulariser
from coseg.segment.randla import RandLAEncoder


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, size=(800, 3)).astype(np.float32)
    enc = RandLAEncoder().freeze()
    encoded = enc.encode(xyz, rng=np.random.default_rng(1))
    feats = [torch.nn.functional.normalize(torch.randn(800, 64), dim=1) for _ in range(4)]
    return enc, encoded, feats


@pytest.mark.parametrize("kw", [{}, {"use_dino": False}, {"use_spatial": False}, {"single_scale": True}])
def test_shapes_and_gradients_only_into_decoder(scene, kw):
    enc, encoded, feats = scene
    dec = FusionDecoder(DecoderConfig(num_classes=6, **kw))
    out = dec(gather_fusion_inputs(encoded["hierarchy"], encoded if kw.get("use_spatial", True) else None,
                                   feats if kw.get("use_dino", True) else None))
    assert tuple(out["logits"].shape) == (800, 6)
    h = encoded["hierarchy"]
    for n, f in out["fused"].items():
        assert f.shape[0] == len(h.xyz[n - 1])
    assert sorted(out["fused"]) == ([1] if kw.get("single_scale") else [1, 2, 3, 4])
    probs = torch.softmax(out["logits"], -1)
    loss = js_loss(probs, torch.from_numpy(np.arange(800) % 6), 0.5)
    if not kw.get("single_scale"):
        rng = np.random.default_rng(0)
        for n in (3, 4):
            loss = loss + kl_regulariser(out["fused"][n], h.xyz[n - 1], 16, 4, rng)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in dec.parameters())
    assert all(p.grad is None for p in enc.parameters())


def _decoded_with_labels(scene):
    """A 4-class decoder, its output on the scene, the softmax, cyclic labels and the level positions."""
    _, encoded, feats = scene
    dec = FusionDecoder(DecoderConfig(num_classes=4))
    out = dec(gather_fusion_inputs(encoded["hierarchy"], encoded, feats))
    return dec, out, torch.softmax(out["logits"], -1), torch.from_numpy(np.arange(800) % 4), encoded["hierarchy"].xyz


def test_coseg_loss_combines_pixel_and_regulariser(scene):
    dec, out, probs, labels, xyz = _decoded_with_labels(scene)
    total, parts = coseg_loss(probs, labels, out["fused"], xyz, CoSegLossConfig(), np.random.default_rng(0))
    assert total.item() == pytest.approx(0.8 * parts["pix"] + 0.2 * parts["reg"], rel=1e-5)
    assert parts["reg"] > 0
    ce, _ = coseg_loss(probs, labels, out["fused"], xyz, CoSegLossConfig(pixel_loss="ce", lambda_reg=0.0),
                       np.random.default_rng(0))
    assert ce.item() == pytest.approx(0.8 * -torch.log(probs[torch.arange(800), labels]).mean().item(), rel=1e-5)


def test_the_logit_regulariser_is_added_only_when_asked_and_needs_the_logits(scene):
    dec, out, probs, labels, xyz = _decoded_with_labels(scene)
    config = CoSegLossConfig(lambda_logits=0.5)
    total, parts = coseg_loss(probs, labels, out["fused"], xyz, config, np.random.default_rng(0),
                              logits=out["logits"])
    assert parts["reg_logits"] > 0
    assert total.item() == pytest.approx(0.8 * parts["pix"] + 0.2 * parts["reg"] + 0.5 * parts["reg_logits"],
                                         rel=1e-5)
    # Its gradient reaches the head, which the coarse-level regulariser never touches.
    dec.zero_grad()
    only = CoSegLossConfig(lambda_pix=0.0, lambda_reg=0.0, lambda_logits=1.0)
    coseg_loss(probs, labels, out["fused"], xyz, only, np.random.default_rng(0), logits=out["logits"])[0].backward()
    assert dec.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="logits"):
        coseg_loss(probs, labels, out["fused"], xyz, config, np.random.default_rng(0))
    _, off = coseg_loss(probs, labels, out["fused"], xyz, CoSegLossConfig(), np.random.default_rng(0))
    assert off["reg_logits"] == 0.0


def test_a_decode_plan_gives_the_values_of_the_full_decoding(scene):
    from coseg.segment.decoder import DecodePlan

    _, encoded, feats = scene
    dec = FusionDecoder(DecoderConfig(num_classes=5))
    inputs = gather_fusion_inputs(encoded["hierarchy"], encoded, feats)
    full = dec(inputs)
    points = np.sort(np.random.default_rng(3).choice(800, 150, replace=False))
    plan = DecodePlan.for_points(inputs, points)
    assert len(plan.sets[1]) < len(encoded["hierarchy"].xyz[1])  # only what the 150 points read
    part = dec(inputs.take(plan))
    torch.testing.assert_close(part["logits"], full["logits"][torch.from_numpy(points)], rtol=1e-5, atol=1e-5)
    for n in (2, 3, 4):
        torch.testing.assert_close(part["fused"][n], full["fused"][n][torch.from_numpy(plan.sets[n - 1])],
                                   rtol=1e-5, atol=1e-5)


def test_single_scale_has_no_global_path(scene):
    _, encoded, feats = scene
    dec = FusionDecoder(DecoderConfig(num_classes=3, single_scale=True))
    assert list(dec.mlps) == ["1"]
    assert dec.mlps["1"].frozen.in_features == 64 + 32 and dec.mlps["1"].carried is None


def test_full_decoder_input_widths(scene):
    dec = FusionDecoder(DecoderConfig(num_classes=3))
    assert dec.mlps["4"].frozen.in_features == 64 + 512 + 512 and dec.mlps["4"].carried is None
    assert dec.mlps["1"].frozen.in_features == 64 + 32 and dec.mlps["1"].carried.in_features == 64
    nosp = FusionDecoder(DecoderConfig(num_classes=3, use_spatial=False))
    assert nosp.mlps["4"].frozen.in_features == 64
    _, encoded, feats = scene
    with pytest.raises(ValueError, match="level 1 takes 64 frozen channels, got 96"):
        nosp(gather_fusion_inputs(encoded["hierarchy"], encoded, feats))
    with pytest.raises(ValueError, match="needs 2D features"):
        FusionDecoder(DecoderConfig(num_classes=3, use_dino=False, use_spatial=False))


def test_learnable_params_mb():
    lin = torch.nn.Linear(1024, 256)  # 262400 parameters
    assert learnable_params_mb(lin) == pytest.approx(262400 * 4 / 2**20)
    lin.bias.requires_grad_(False)
    assert learnable_params_mb(lin) == pytest.approx(262144 * 4 / 2**20)
    assert learnable_params_mb(RandLAEncoder().freeze()) == 0.0


def test_identity_field_baseline():
    field = IdentityField(num_gaussians=50, num_classes=4)
    assert tuple(field.identities.shape) == (50, 16)
    rendered = torch.randn(8, 8, 16)
    assert tuple(field.classify(rendered).shape) == (8, 8, 4)
    xyz = np.random.default_rng(0).normal(size=(50, 3))
    reg = field.regulariser(torch.arange(50), xyz, np.random.default_rng(0))
    reg.backward()
    assert reg.item() > 0 and field.identities.grad.abs().sum() > 0
    lrs = [g["lr"] for g in field.param_groups()]
    assert lrs == [2.5e-3, 5e-4]
