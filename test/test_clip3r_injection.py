"""CLIP3R additions start at zero effect: with zero-initialised injection / a feature head, geometry is SLAM3R's."""

from __future__ import annotations

import pytest
import torch

from ov_mapping.models.clip3r import build_i2p, build_l2w, load_state_dict_checked, pool_feature_map_to_patches

CLIP_DIM = 48


def _pair(builder):
    """A plain model and a CLIP3R model holding the same SLAM3R weights."""
    torch.manual_seed(0)
    plain = builder("small")
    clip = builder("small", clip_dim=CLIP_DIM)
    load_state_dict_checked(clip, plain.state_dict(), allow_missing_clip3r=True)
    return plain, clip


def _clip_tokens(views: int) -> list[torch.Tensor]:
    return [torch.randn(2, 9, CLIP_DIM) for _ in range(views)]


@pytest.fixture(scope="module")
def i2p_pair():
    return _pair(build_i2p)


@pytest.fixture(scope="module")
def tokens():
    torch.manual_seed(1)
    return [torch.randn(2, 196, 128) for _ in range(4)]


def _assert_results_equal(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert torch.equal(ra[key], rb[key]), key


def test_zero_initialised_injection_reproduces_slam3r_exactly(i2p_pair, tokens):
    plain, clip = i2p_pair
    with torch.no_grad():
        expected = plain(tokens, 1, return_pseudo_conf=True)
        with_clip = clip(tokens, 1, clip_features=_clip_tokens(len(tokens)), return_pseudo_conf=True)
        without_clip = clip(tokens, 1, return_pseudo_conf=True)
    _assert_results_equal(expected, with_clip)
    _assert_results_equal(expected, without_clip)


def test_zero_initialised_injection_keeps_retrieval_scores(i2p_pair, tokens):
    plain, clip = i2p_pair
    with torch.no_grad():
        expected = plain.retrieval_scores(tokens, 0)
        got = clip.retrieval_scores(tokens, 0, clip_features=_clip_tokens(len(tokens)))
    assert torch.equal(expected, got)


def test_trained_injection_changes_geometry(tokens):
    plain, clip = _pair(build_i2p)
    with torch.no_grad():
        torch.nn.init.normal_(clip.clip_injection.out.weight, std=0.05)
        expected = plain(tokens, 0)
        got = clip(tokens, 0, clip_features=_clip_tokens(len(tokens)))
    assert not torch.allclose(expected[0]["pts3d"], got[0]["pts3d"])


def test_clip_features_without_injection_are_rejected(i2p_pair, tokens):
    plain, _ = i2p_pair
    with pytest.raises(ValueError, match="clip_dim"):
        plain(tokens, 0, clip_features=_clip_tokens(len(tokens)))


def test_clip_features_of_wrong_width_are_rejected(i2p_pair, tokens):
    _, clip = i2p_pair
    bad = [torch.randn(2, 9, CLIP_DIM + 1) for _ in tokens]
    with pytest.raises(ValueError, match=r"clip_features\[0\]"):
        clip(tokens, 0, clip_features=bad)


def test_l2w_feature_head_leaves_geometry_unchanged(tokens):
    plain, clip = _pair(build_l2w)
    torch.manual_seed(2)
    scene_pts = [torch.randn(2, 224, 224, 3) for _ in range(2)]
    key_pts = [torch.randn(2, 224, 224, 3) for _ in range(2)]
    with torch.no_grad():
        scene_a, key_a = plain(tokens[:2], scene_pts, tokens[2:], key_pts)
        scene_b, key_b = clip(tokens[:2], scene_pts, tokens[2:], key_pts)
    for ra, rb in zip(scene_a + key_a, scene_b + key_b):
        assert rb["clip_features"].shape == (2, 14, 14, CLIP_DIM)
        assert "clip_features" not in ra
        for key in ra:
            assert torch.equal(ra[key], rb[key]), key


def test_pool_feature_map_averages_each_patch():
    fmap = torch.zeros(1, 224, 224, 4)
    fmap[0, :16, 16:32] = 2.0  # patch (row 0, col 1) fully set
    fmap[0, 16:24, :16] = 1.0  # half of patch (row 1, col 0)
    pooled = pool_feature_map_to_patches(fmap)
    assert pooled.shape == (1, 196, 4)
    assert torch.allclose(pooled[0, 1], torch.full((4,), 2.0))
    assert torch.allclose(pooled[0, 14], torch.full((4,), 0.5))
    assert pooled[0, 0].abs().sum() == 0
