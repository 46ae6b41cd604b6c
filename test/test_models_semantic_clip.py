"""ClipModel: loading (names, tags, local checkpoints, custom configs), errors, embeddings, text cache."""

import json

import numpy as np
import pytest
import torch

from ov_mapping.models.clip import (
    CheckpointError,
    ClipModel,
    UnknownModelError,
    build_clip_from_config,
    check_pretrained_tag,
)

TINY_CFG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_clip_from_config(TINY_CFG)
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


@pytest.fixture(scope="module")
def clip(tiny_checkpoint):
    return ClipModel.from_checkpoint(tiny_checkpoint[0], config=TINY_CFG, text_cache_size=3)


def test_loaded_weights_equal_saved(clip, tiny_checkpoint):
    saved = tiny_checkpoint[1]
    loaded = clip.model.state_dict()
    assert set(saved) == set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert clip.embed_dim == 24 and clip.input_size == (32, 32)


def test_config_from_json_file(tiny_checkpoint, tmp_path):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps({"model_cfg": TINY_CFG}))
    model = ClipModel.from_checkpoint(tiny_checkpoint[0], config=cfg_path)
    assert model.embed_dim == 24


def test_encode_images_normalised_any_size(clip):
    images = [np.zeros((40, 70, 3), np.uint8), np.full((9, 5, 3), 200, np.uint8), np.random.default_rng(0).integers(
        0, 255, (33, 33, 3)).astype(np.uint8)]
    emb = clip.encode_images(images)
    assert emb.shape == (3, 24) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    batch = clip.encode_images(np.stack([images[2], images[2]]))
    np.testing.assert_allclose(batch[0], emb[2], atol=1e-5)
    assert clip.encode_images([]).shape == (0, 24)


def test_encode_images_rejects_bad_input(clip):
    with pytest.raises(ValueError, match="uint8"):
        clip.encode_images([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        clip.encode_images([np.zeros((8, 8), np.uint8)])


def test_encode_text_averages_templates(clip):
    emb = clip.encode_text(["chair"])
    tokens = clip.tokenizer([t.format("chair") for t in clip.templates])
    with torch.no_grad():
        per_template = torch.nn.functional.normalize(clip.model.encode_text(tokens), dim=-1).mean(0)
    expected = (per_template / per_template.norm()).numpy()
    np.testing.assert_allclose(emb[0], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_text_cache_is_lru(clip):
    first = clip.encode_text(["a", "b", "c"])
    clip.encode_text(["a"])  # touch "a": "b" is now least recently used
    clip.encode_text(["d"])
    assert clip.cached_texts == ["c", "a", "d"]
    again = clip.encode_text(["a", "b", "a"])
    np.testing.assert_allclose(again[0], first[0], atol=1e-6)
    np.testing.assert_allclose(again[1], first[1], atol=1e-6)
    np.testing.assert_allclose(again[2], first[0], atol=1e-6)


def test_encode_text_rejects_a_bare_string(clip):
    with pytest.raises(ValueError, match="list of strings"):
        clip.encode_text("chair")


def test_unknown_model_name_lists_close_matches(tmp_path):
    with pytest.raises(UnknownModelError, match="ViT-B-32"):
        ClipModel.from_checkpoint(tmp_path / "x.pt", model_name="ViT-B-33")
    with pytest.raises(UnknownModelError, match="laion2b_s34b_b79k"):
        check_pretrained_tag("ViT-B-32", "laion2b_s34b_b7")


def test_missing_and_unexpected_keys_are_named(tiny_checkpoint, tmp_path):
    state = dict(tiny_checkpoint[1])
    state.pop("ln_final.weight")
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        ClipModel.from_checkpoint(path, config=TINY_CFG)
    assert "ln_final.weight" in str(info.value) and "extra.weight" in str(info.value)


def test_wrong_shape_and_corrupt_files(tiny_checkpoint, tmp_path):
    state = dict(tiny_checkpoint[1])
    state["text_projection"] = torch.zeros(3, 3)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="text_projection"):
        ClipModel.from_checkpoint(path, config=TINY_CFG)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        ClipModel.from_checkpoint(garbage, config=TINY_CFG)
    with pytest.raises(FileNotFoundError):
        ClipModel.from_checkpoint(tmp_path / "absent.pt", config=TINY_CFG)


def test_registry_entry_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="download-weights"):
        ClipModel.from_registry("clip_vit_b32_laion2b_s34b_b79k", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="kind"):
        ClipModel.from_registry("sam_vit_b", cache_dir=tmp_path)


def test_invalid_config_and_templates(tiny_checkpoint):
    with pytest.raises(ValueError, match="embed_dim"):
        ClipModel.from_checkpoint(tiny_checkpoint[0], config={"vision_cfg": {}, "text_cfg": {}})
    with pytest.raises(ValueError, match="exactly one"):
        ClipModel.from_checkpoint(tiny_checkpoint[0])
    with pytest.raises(ValueError, match="template"):
        ClipModel.from_checkpoint(tiny_checkpoint[0], config=TINY_CFG, templates=["no placeholder"])
