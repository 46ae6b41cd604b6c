"""Checkpoint loading: strict named key checks, .safetensors and .pth, CLIP3R keys under new prefixes."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from ov_mapping.models.clip3r import (
    CheckpointError,
    I2P,
    build_i2p,
    build_l2w,
    infer_clip_dim,
    load_checkpoint,
    load_i2p,
    load_l2w,
    read_state_dict,
)


@pytest.fixture(scope="module")
def i2p_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in build_i2p("small").state_dict().items()}


def _save(tmp_path, state, name="model.safetensors"):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save({"model": state, "epoch": 3}, path)
    return path


def test_missing_key_is_named(tmp_path, i2p_state):
    state = dict(i2p_state)
    del state["mv_dec_blocks2.1.norm_y.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys: mv_dec_blocks2\.1\.norm_y\.bias"):
        load_checkpoint(build_i2p("small"), _save(tmp_path, state))


def test_unexpected_key_is_named(tmp_path, i2p_state):
    state = dict(i2p_state, **{"enc_blocks.9.norm1.weight": torch.ones(128)})
    with pytest.raises(CheckpointError, match=r"unexpected keys: enc_blocks\.9\.norm1\.weight"):
        load_checkpoint(build_i2p("small"), _save(tmp_path, state))


def test_wrong_shape_is_named(tmp_path, i2p_state):
    state = dict(i2p_state, **{"decoder_embed.weight": torch.zeros(128, 64)})
    with pytest.raises(CheckpointError, match=r"shape mismatches: decoder_embed\.weight \(checkpoint \(128, 64\)"):
        load_checkpoint(build_i2p("small"), _save(tmp_path, state))


def test_matching_checkpoint_loads_values(tmp_path, i2p_state):
    model = build_i2p("small")
    load_checkpoint(model, _save(tmp_path, i2p_state, "ckpt.pth"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, i2p_state[key]), key


def test_clip3r_checkpoint_loads_with_inferred_clip_dim(tmp_path, i2p_state):
    torch.manual_seed(1)
    source = build_i2p("small", clip_dim=40)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["clip_injection.out.weight"].normal_()  # a "trained" injection
    path = _save(tmp_path, state)
    assert infer_clip_dim(state) == 40
    model = load_i2p(path, config="small")
    assert isinstance(model, I2P) and model.clip_injection is not None
    assert torch.equal(model.clip_injection.out.weight, state["clip_injection.out.weight"])
    load_checkpoint(build_i2p("small", clip_dim=40), path)  # an explicitly built CLIP3R model loads it too


def test_clip3r_keys_into_plain_model_are_rejected(tmp_path):
    state = build_i2p("small", clip_dim=40).state_dict()
    with pytest.raises(CheckpointError, match=r"unexpected keys: clip_injection\..*build the model with clip_dim"):
        load_checkpoint(build_i2p("small"), _save(tmp_path, state))


def test_slam3r_weights_into_clip3r_model_need_explicit_permission(tmp_path, i2p_state):
    path = _save(tmp_path, i2p_state)
    with pytest.raises(CheckpointError, match=r"missing keys: clip_injection\."):
        load_checkpoint(build_i2p("small", clip_dim=40), path)
    model = build_i2p("small", clip_dim=40)
    load_checkpoint(model, path, allow_missing_clip3r=True)
    assert torch.equal(model.decoder_embed.weight, i2p_state["decoder_embed.weight"])


def test_permission_covers_only_clip3r_keys(tmp_path, i2p_state):
    state = dict(i2p_state)
    del state["enc_norm.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys: enc_norm\.weight"):
        load_checkpoint(build_i2p("small", clip_dim=40), _save(tmp_path, state), allow_missing_clip3r=True)


def test_l2w_loader_builds_on_meta_and_fills_every_tensor(tmp_path):
    torch.manual_seed(2)
    state = build_l2w("small").state_dict()
    model = load_l2w(_save(tmp_path, state), config="small")
    assert not any(p.is_meta for p in model.parameters())
    assert torch.equal(model.void_pe_token, state["void_pe_token"])


def test_pickle_without_state_dict_is_rejected(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"model": {"a": [1, 2]}}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        read_state_dict(tmp_path / "nope.safetensors")
