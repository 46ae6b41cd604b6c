"""Component behaviour of the CLIP3R networks: RoPE, heads, point embedding, configs and input checks."""

from __future__ import annotations

import argparse

import pytest
import torch

from ov_mapping.models.clip3r import CheckpointError, build_i2p, build_l2w, get_config, read_state_dict
from ov_mapping.models.clip3r.heads import conf_from_raw, points_from_raw
from ov_mapping.models.clip3r.rope import apply_rope, patch_grid_positions, rope_tables


def test_grid_positions_are_row_major_from_zero():
    pos = patch_grid_positions(2, 3)
    assert pos.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_rope_is_identity_at_origin_and_keeps_norms():
    cos, sin = rope_tables(patch_grid_positions(14, 14), 64)
    x = torch.randn(2, 196, 64)
    rotated = apply_rope(x, cos, sin)
    assert torch.equal(rotated[:, 0], x[:, 0])
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def test_rope_scores_depend_only_on_relative_position():
    positions = torch.tensor([[0, 0], [2, 5], [3, 1], [5, 6]])
    cos, sin = rope_tables(positions, 16)
    q, k = torch.randn(16), torch.randn(16)
    rq = apply_rope(q.expand(4, 16), cos, sin)
    rk = apply_rope(k.expand(4, 16), cos, sin)
    # (0,0)->(2,5) and (3,1)->(5,6) share the offset (2, 5).
    torch.testing.assert_close(rq[0] @ rk[1], rq[2] @ rk[3])
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[2])


def test_rope_rotates_y_with_first_half_and_x_with_second():
    cos, sin = rope_tables(torch.tensor([[1, 0], [0, 1]]), 8)
    x = torch.ones(2, 8)
    rotated = apply_rope(x, cos, sin)
    assert not torch.equal(rotated[0, :4], x[0, :4]) and torch.equal(rotated[0, 4:], x[0, 4:])
    assert torch.equal(rotated[1, :4], x[1, :4]) and not torch.equal(rotated[1, 4:], x[1, 4:])


def test_rope_rejects_bad_head_dim():
    with pytest.raises(ValueError, match="divisible by 4"):
        rope_tables(patch_grid_positions(2, 2), 6)


def test_point_and_confidence_activations():
    raw = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    pts = points_from_raw(raw)
    torch.testing.assert_close(pts[0].norm(), torch.expm1(torch.tensor(5.0)))
    assert torch.equal(pts[1], torch.zeros(3))
    assert torch.equal(conf_from_raw(torch.tensor([0.0])), torch.tensor([2.0]))


@pytest.fixture(scope="module")
def i2p():
    torch.manual_seed(0)
    return build_i2p("small")


def test_encode_and_forward_shapes(i2p):
    with torch.no_grad():
        tokens = i2p.encode(torch.rand(3, 3, 224, 224) * 2 - 1)
        assert tokens.shape == (3, 196, 128)
        views = [tokens[i : i + 1] for i in range(3)]
        res = i2p(views, 1)
    assert set(res[1]) == {"pts3d", "conf"}
    assert set(res[0]) == set(res[2]) == {"pts3d_in_other_view", "conf"}
    assert res[0]["pts3d_in_other_view"].shape == (1, 224, 224, 3)
    assert res[1]["conf"].shape == (1, 224, 224) and bool((res[1]["conf"] >= 1).all())


def test_bad_inputs_raise_clear_errors(i2p):
    tokens = [torch.randn(1, 196, 128) for _ in range(3)]
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\)"):
        i2p.encode(torch.zeros(1, 3, 200, 224))
    with pytest.raises(ValueError, match=r"tokens\[1\] must be \(B, 196, 128\)"):
        i2p([tokens[0], torch.randn(1, 196, 64)], 0)
    with pytest.raises(ValueError, match="ref_index"):
        i2p(tokens, 3)
    with pytest.raises(ValueError, match="at least 2"):
        i2p(tokens[:1], 0)
    with pytest.raises(ValueError, match="batch size"):
        i2p([tokens[0], torch.randn(2, 196, 128)], 0)
    with pytest.raises(ValueError, match="depth"):
        i2p.retrieval_scores(tokens, 0, depth=3)


def test_l2w_masks_replace_point_embedding_with_void_token():
    torch.manual_seed(0)
    l2w = build_l2w("small")
    pts = torch.randn(1, 2, 224, 224, 3)
    masks = torch.zeros(1, 2, 196, dtype=torch.bool)
    masks[0, 1, 5] = True
    with torch.no_grad():
        emb = l2w.embed_points(pts, masks)
        plain = l2w.embed_points(pts)
    assert emb.shape == (1, 2, 196, 128)
    assert torch.equal(emb[0, 1, 5], l2w.void_pe_token[0, 0])
    assert torch.equal(emb[~masks], plain[~masks])
    assert not torch.equal(emb[masks], plain[masks])


def test_l2w_rejects_bad_pointmaps_and_masks():
    l2w = build_l2w("small")
    tokens = [torch.randn(1, 196, 128)]
    pts = [torch.randn(1, 224, 224, 3)]
    with pytest.raises(ValueError, match=r"key_pts3d\[0\]"):
        l2w(tokens, pts, tokens, [torch.randn(1, 224, 224)])
    with pytest.raises(ValueError, match=r"scene_masks\[0\].*bool"):
        l2w(tokens, pts, tokens, pts, scene_masks=[torch.zeros(1, 196)])


def test_unknown_config_lists_known_names():
    with pytest.raises(ValueError, match="slam3r_i2p"):
        get_config("huge")
    assert get_config("small").num_patches == 196


def test_pickle_with_foreign_objects_needs_trust(tmp_path):
    path = tmp_path / "train.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        read_state_dict(path)
    assert torch.equal(read_state_dict(path, trust_pickle=True)["w"], torch.ones(2))
