"""The `sam` label generator: architecture, official key names, weight loading, automatic masks.

No SAM checkpoint exists on the test machines: the whole code path runs on a
tiny randomly initialised model of the real architecture, and the official
ViT-B/L/H shapes are checked on meta-device models (no memory).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.labelgen.sam_auto import (SamGenerator, SamSettings, box_iou, box_nms, mask_boxes, paint_masks, point_grid,
                                     stability_score)
from coseg.labelgen.sam_decoder import DecoderConfig
from coseg.labelgen.sam_encoder import Attention, EncoderConfig, _from_windows, _to_windows
from coseg.labelgen.sam_model import MODELS, SamConfig, SamModel, config_from_state, find_checkpoint, load_sam

TINY = SamConfig(EncoderConfig(dim=32, depth=3, heads=2, global_blocks=(1,), window=3, image_size=96, out_dim=32),
                 DecoderConfig(dim=32, grid=6, image_size=96, mlp_dim=64, iou_hidden=32))

# Keys of the official checkpoints (facebookresearch/segment-anything), one per kind of module.
OFFICIAL_KEYS = [
    "image_encoder.pos_embed", "image_encoder.patch_embed.proj.weight", "image_encoder.patch_embed.proj.bias",
    "image_encoder.blocks.0.norm1.weight", "image_encoder.blocks.0.attn.rel_pos_h",
    "image_encoder.blocks.0.attn.rel_pos_w", "image_encoder.blocks.0.attn.qkv.weight",
    "image_encoder.blocks.0.attn.proj.bias", "image_encoder.blocks.0.norm2.bias",
    "image_encoder.blocks.0.mlp.lin1.weight", "image_encoder.blocks.0.mlp.lin2.bias",
    "image_encoder.neck.0.weight", "image_encoder.neck.1.weight", "image_encoder.neck.2.weight",
    "image_encoder.neck.3.bias",
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "prompt_encoder.point_embeddings.3.weight",
    "prompt_encoder.not_a_point_embed.weight", "prompt_encoder.mask_downscaling.0.weight",
    "prompt_encoder.mask_downscaling.1.bias", "prompt_encoder.mask_downscaling.3.weight",
    "prompt_encoder.mask_downscaling.4.weight", "prompt_encoder.mask_downscaling.6.bias",
    "prompt_encoder.no_mask_embed.weight",
    "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
    "mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight", "mask_decoder.transformer.layers.1.norm4.weight",
    "mask_decoder.transformer.layers.0.cross_attn_image_to_token.v_proj.weight",
    "mask_decoder.transformer.final_attn_token_to_image.k_proj.weight",
    "mask_decoder.transformer.norm_final_attn.weight", "mask_decoder.iou_token.weight",
    "mask_decoder.mask_tokens.weight", "mask_decoder.output_upscaling.0.weight",
    "mask_decoder.output_upscaling.1.weight", "mask_decoder.output_upscaling.3.bias",
    "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight", "mask_decoder.iou_prediction_head.layers.2.bias",
]


def _tiny(seed=0) -> SamModel:
    torch.manual_seed(seed)
    model = SamModel(TINY)
    with torch.no_grad():  # official zero inits would hide indexing mistakes
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def _official_shapes(name: str) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in SamModel(SamConfig(MODELS[name][0])).state_dict().items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_official_architectures_have_the_official_keys_and_shapes(name):
    shapes = _official_shapes(name)
    assert set(OFFICIAL_KEYS) <= set(shapes)
    enc = MODELS[name][0]
    assert shapes["image_encoder.pos_embed"] == (1, 64, 64, enc.dim)
    head = enc.dim // enc.heads
    assert shapes["image_encoder.blocks.0.attn.rel_pos_h"] == (27, head)
    assert shapes[f"image_encoder.blocks.{enc.global_blocks[0]}.attn.rel_pos_h"] == (127, head)
    assert shapes["mask_decoder.output_upscaling.0.weight"] == (256, 64, 2, 2)
    assert shapes["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"] == (128, 256)
    assert shapes["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert shapes["mask_decoder.iou_prediction_head.layers.2.weight"] == (4, 256)
    assert len([k for k in shapes if k.startswith("image_encoder.blocks.") and k.endswith("qkv.weight")]) == enc.depth
    # The architecture is read back from the shapes alone.
    got = config_from_state({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    assert got.encoder == enc and got.decoder == DecoderConfig()


def test_relative_position_attention_matches_its_definition():
    """logit(q_yx, k_y'x') = q.k / sqrt(d) + q.R_h[y - y'] + q.R_w[x - x'], computed naively."""
    torch.manual_seed(1)
    att = Attention(8, 2, side=3)
    with torch.no_grad():
        att.rel_pos_h.normal_()
        att.rel_pos_w.normal_()
    x = torch.randn(1, 3, 3, 8)
    qkv = att.qkv(x).reshape(9, 3, 2, 4)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # [9, heads, 4]
    out = torch.zeros(9, 2, 4)
    for i in range(9):
        for h in range(2):
            logits = torch.stack([q[i, h] @ k[j, h] / 2.0
                                  + q[i, h] @ att.rel_pos_h[i // 3 - j // 3 + 2]
                                  + q[i, h] @ att.rel_pos_w[i % 3 - j % 3 + 2] for j in range(9)])
            out[i, h] = torch.softmax(logits, 0) @ v[:, h]
    expected = att.proj(out.reshape(1, 3, 3, 8))
    torch.testing.assert_close(att(x), expected, atol=1e-5, rtol=1e-5)


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    win, padded = _to_windows(x, 3)
    assert win.shape == (2 * 2 * 3, 3, 3, 3) and padded == (6, 9)
    torch.testing.assert_close(_from_windows(win, 3, padded, (5, 7)), x)
    # window (1, 2) of image 0 holds rows 3..5, columns 6..8 (zero-padded)
    torch.testing.assert_close(win[5, :2, :1], x[0, 3:5, 6:7])


def test_tiny_model_round_trips_through_an_official_style_checkpoint(tmp_path):
    model = _tiny()
    path = tmp_path / "tiny_sam.pth"
    torch.save(model.state_dict(), path)
    loaded = load_sam(path)
    assert loaded.config == TINY
    image = np.random.default_rng(0).uniform(0, 1, (40, 60, 3)).astype(np.float32)
    a, b = model.embed_image(image), loaded.embed_image(image)
    assert a.shape == (1, 32, 6, 6)
    torch.testing.assert_close(a, b)
    masks, iou = loaded.predict_points(b, torch.tensor([[10.0, 20.0], [50.0, 5.0]]), (40, 60))
    assert masks.shape == (2, 4, 40, 60) and iou.shape == (2, 4) and torch.isfinite(masks).all()
    # A checkpoint saved under a "model" entry loads the same.
    torch.save({"model": model.state_dict()}, tmp_path / "wrapped.pth")
    torch.testing.assert_close(load_sam(tmp_path / "wrapped.pth").embed_image(image), a)


def test_bad_checkpoints_are_one_clear_line(tmp_path):
    torch.save(_tiny().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(InputError, match="not vit_b") as e:
        load_sam(tmp_path / "tiny.pth", "vit_b")
    assert "\n" not in str(e.value)
    torch.save({"cls_token": torch.zeros(1, 1, 8), "blocks.0.attn.qkv.weight": torch.zeros(24, 8)},
               tmp_path / "dino.pth")
    with pytest.raises(InputError, match="not a Segment Anything checkpoint"):
        load_sam(tmp_path / "dino.pth")
    torch.save({"image_encoder.layers.0.blocks.0.conv1.c.weight": torch.zeros(1)}, tmp_path / "mobile.pt")
    with pytest.raises(InputError, match="MobileSAM"):
        load_sam(tmp_path / "mobile.pt")
    state = _tiny().state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 32)
    state["mask_decoder.mask_tokens.weight"] = torch.zeros(4, 16)
    torch.save(state, tmp_path / "shapes.pth")
    with pytest.raises(InputError, match="shapes do not match"):
        load_sam(tmp_path / "shapes.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable SAM checkpoint"):
        load_sam(tmp_path / "junk.pth")


def test_weights_are_found_locally_or_the_error_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("COSEG_SAM_DIR", str(tmp_path))
    with pytest.raises(InputError, match="no SAM checkpoint in .*sam_vit_b_01ec64.pth"):
        find_checkpoint("vit_b", None)
    with pytest.raises(InputError, match="missing.pth: SAM weights not found"):
        find_checkpoint("auto", tmp_path / "missing.pth")
    (tmp_path / "sam_vit_l_0b3195.pth").write_bytes(b"")
    assert find_checkpoint("auto", None).name == "sam_vit_l_0b3195.pth"
    assert find_checkpoint("vit_l", tmp_path).name == "sam_vit_l_0b3195.pth"
    gen = SamGenerator(model="vit_h")
    assert not gen.available() and "sam_vit_h_4b8939.pth" in gen.unavailable_reason()
    with pytest.raises(InputError, match="unknown SAM model"):
        find_checkpoint("vit_x", None)


def test_grid_stability_boxes_and_nms():
    grid = point_grid(2, (10, 20))
    torch.testing.assert_close(grid, torch.tensor([[5.0, 2.5], [15.0, 2.5], [5.0, 7.5], [15.0, 7.5]], dtype=torch.float64))
    logits = torch.tensor([[[3.0, 0.5, -0.5, -3.0]]])  # > 1: 1 pixel, > -1: 3 pixels
    torch.testing.assert_close(stability_score(logits, 1.0), torch.tensor([1 / 3]))
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, 1:4, 2:6] = True
    masks[1, 1:4, 2:5] = True
    masks[2, 6:8, 0:2] = True
    boxes = mask_boxes(masks)
    torch.testing.assert_close(boxes, torch.tensor([[2.0, 1, 5, 3], [2, 1, 4, 3], [0, 6, 1, 7]]))
    assert box_iou(boxes[:1], boxes[1:2]).item() == pytest.approx(2 / 3)
    keep = box_nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.6)
    assert keep.tolist() == [1, 2]  # box 0 duplicates the higher-scored box 1
    assert box_nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.7).tolist() == [1, 0, 2]
    assert mask_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_paint_masks_puts_parts_over_wholes_and_drops_hidden_ones():
    masks = torch.zeros(3, 6, 6, dtype=torch.bool)
    masks[0] = True  # the whole
    masks[1, :3, :3] = True  # a part
    masks[2, :1, :1] = True  # a tiny part, kept or dropped by min_area
    ids = paint_masks(masks)
    assert ids[5, 5] == 1 and ids[2, 2] == 2 and ids[0, 0] == 3
    ids = paint_masks(masks, min_area=2)
    assert ids[0, 0] == 0 and set(np.unique(ids)) == {0, 1, 2}
    assert (paint_masks(masks[:0].reshape(0, 6, 6)) == 0).all()


def test_automatic_generation_runs_the_whole_path_on_a_tiny_model():
    image = np.zeros((48, 64, 3), np.float32)
    image[:, 32:] = [0.9, 0.2, 0.1]
    settings = SamSettings(points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                           min_area=0.0)
    gen = SamGenerator(settings=settings, sam=_tiny(3))
    ids = gen.generate(image)
    assert ids.shape == (48, 64) and ids.dtype == np.int32
    present = np.unique(ids[ids > 0])
    assert present.size >= 1 and present.tolist() == list(range(1, present.size + 1))
    np.testing.assert_array_equal(gen.generate(image), ids)  # deterministic
    # Filters that nothing passes give an empty map, not an error.
    strict = gen.configure(pred_iou_thresh=1.0)
    assert (strict.generate(image) == 0).all()
    assert gen.settings()["points_per_side"] == 4 and gen.settings()["weights"] is None
    with pytest.raises(InputError, match="unknown sam option"):
        gen.configure(points=3)
    with pytest.raises(InputError, match="must be in"):
        SamSettings(pred_iou_thresh=1.5)
