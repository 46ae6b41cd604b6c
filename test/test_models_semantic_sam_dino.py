"""SAM and DINO loaders on tiny models of the real architectures, their errors, DINO pooling."""

import numpy as np
import pytest
import torch

from ov_mapping.models.clip import CheckpointError
from ov_mapping.models.dino import DinoModel, build_dino, mask_coverage, pool_patch_features
from ov_mapping.models.sam import (
    SAM_ARCHITECTURES,
    SamArchitecture,
    SamGeneratorParams,
    build_sam,
    generate_sam_masks,
    load_sam,
    load_sam_from_registry,
    make_mask_generator,
)
from ov_mapping.segmentation.mask_sources import SamMaskSource, make_mask_source

TINY_SAM = SamArchitecture(32, 2, 2, (1,), image_size=64, window_size=2, prompt_embed_dim=32, decoder_mlp_dim=64,
                           decoder_num_heads=2, iou_head_hidden_dim=32)
TINY_DINO = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(sam.state_dict(), path)
    return path, sam.state_dict()


@pytest.fixture(scope="module")
def dino_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_dino(**TINY_DINO)
    path = tmp_path_factory.mktemp("dino") / "tiny_dino.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_official_sam_sizes_match_segment_anything():
    assert SAM_ARCHITECTURES["vit_b"].encoder_embed_dim == 768
    assert SAM_ARCHITECTURES["vit_h"].encoder_global_attn_indexes == (7, 15, 23, 31)
    with pytest.raises(ValueError, match="vit_b"):
        build_sam("vit_x")


def test_sam_checkpoint_round_trip(sam_checkpoint):
    path, saved = sam_checkpoint
    sam = load_sam(TINY_SAM, path)
    assert all(torch.equal(saved[k], v) for k, v in sam.state_dict().items())


def test_sam_key_errors_name_the_keys(sam_checkpoint, tmp_path):
    state = dict(sam_checkpoint[1])
    state.pop("mask_decoder.iou_token.weight")
    state["image_encoder.extra"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as info:
        load_sam(TINY_SAM, bad)
    assert "mask_decoder.iou_token.weight" in str(info.value) and "image_encoder.extra" in str(info.value)
    # The tiny checkpoint does not fit ViT-B: shapes are reported, not a torch traceback.
    state = dict(sam_checkpoint[1])
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_sam(TINY_SAM, bad)


def test_sam_registry_entry_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="download-weights sam_vit_b"):
        load_sam_from_registry("sam_vit_b", cache_dir=tmp_path)


def test_sam_generator_returns_image_sized_masks(sam_checkpoint):
    sam = load_sam(TINY_SAM, sam_checkpoint[0])
    params = SamGeneratorParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    rgb = np.zeros((48, 80, 3), np.uint8)
    rgb[:, 40:] = 255
    masks = generate_sam_masks(make_mask_generator(sam, params), rgb)
    assert masks, "thresholds at 0 keep at least one mask"
    assert all(m.shape == (48, 80) and m.dtype == bool and 0.0 <= s for m, s in masks)
    with pytest.raises(ValueError, match="unknown SAM generator parameters"):
        SamGeneratorParams.from_dict({"points_per_sid": 4})


def test_sam_mask_source_via_factory(sam_checkpoint, caplog):
    caplog.set_level("INFO")
    source = make_mask_source("sam", checkpoint=str(sam_checkpoint[0]), architecture=TINY_SAM, points_per_side=4,
                              pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=20)
    assert isinstance(source, SamMaskSource)
    assert "mask source: sam" in caplog.text
    masks = source.generate(np.full((48, 80, 3), 90, np.uint8))
    assert all(m.mask.shape == (48, 80) and m.area >= 20 for m in masks)


def test_dino_checkpoint_round_trip_and_features(dino_checkpoint):
    path, saved = dino_checkpoint
    dino = DinoModel.from_checkpoint(path, input_short_side=32, **TINY_DINO)
    assert all(torch.equal(saved[k], v) for k, v in dino.model.state_dict().items())
    features = dino.patch_features(np.zeros((48, 80, 3), np.uint8))
    assert dino.input_grid(48, 80) == (2, 3)
    assert features.shape == (2, 3, 32) and np.isfinite(features).all()


def test_dino_key_errors_name_the_keys(dino_checkpoint, tmp_path):
    state = dict(dino_checkpoint[1])
    state.pop("blocks.1.mlp.fc2.bias")
    state["blocks.9.norm1.weight"] = torch.zeros(32)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as info:
        DinoModel.from_checkpoint(bad, **TINY_DINO)
    assert "blocks.1.mlp.fc2.bias" in str(info.value) and "blocks.9.norm1.weight" in str(info.value)
    with pytest.raises(ValueError, match="vit_small_patch16_224"):
        build_dino("vit_smal_patch16_224")


def test_mask_coverage_down_and_up():
    masks = np.zeros((1, 4, 6), bool)
    masks[0, :, :3] = True
    np.testing.assert_allclose(mask_coverage(masks, (2, 3))[0], [[1, 0.5, 0], [1, 0.5, 0]])
    up = mask_coverage(masks, (8, 12))[0]
    assert up[:, :6].all() and not up[:, 6:].any()


def test_pool_patch_features_is_area_weighted():
    features = np.zeros((2, 2, 2), np.float32)
    features[:, 0] = [1.0, 0.0]  # left column of cells
    features[:, 1] = [0.0, 1.0]  # right column
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :, :2] = True  # exactly the left cells
    masks[1, :, :3] = True  # left cells fully, right cells half
    pooled = pool_patch_features(features, masks)
    np.testing.assert_allclose(pooled[0], [1.0, 0.0], atol=1e-6)
    expected = np.array([1.0, 0.5]) / np.linalg.norm([1.0, 0.5])
    np.testing.assert_allclose(pooled[1], expected, atol=1e-6)
    np.testing.assert_allclose(pooled[2], 0.0)  # empty mask
