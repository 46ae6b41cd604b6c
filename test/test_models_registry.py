"""Tests of the weights registry: entries, look-ups, URLs and cache paths."""

import dataclasses
import re
from pathlib import Path

import pytest

from ov_mapping.models import registry
from ov_mapping.models.registry import (
    KINDS,
    Preprocessing,
    WeightsEntry,
    default_cache_dir,
    get_weights,
    list_weights,
    local_path,
    register_weights,
    resolve_url,
)

_PRE = Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "short_side_crop", "bicubic")


def _entry(**overrides):
    fields = dict(
        name="tiny",
        kind="dino",
        architecture="vit_tiny",
        filename="model.safetensors",
        size_bytes=10,
        sha256=None,
        licence="test only",
        preprocessing=_PRE,
        url="http://127.0.0.1:1/tiny.bin",
    )
    fields.update(overrides)
    return WeightsEntry(**fields)


def test_every_entry_is_well_formed():
    entries = list_weights()
    assert len(entries) >= 8
    assert len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert entry.kind in KINDS
        assert isinstance(entry.size_bytes, int) and entry.size_bytes > 0
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.licence.strip()
        assert entry.note.strip(), f"{entry.name} should say where its size/sha256 come from"
        pre = entry.preprocessing
        assert isinstance(pre, Preprocessing)
        assert all(v > 0 for v in pre.input_size)
        assert len(pre.mean) == 3 and all(s > 0 for s in pre.std)
        assert resolve_url(entry).startswith("https://")
    assert {e.kind for e in entries} == set(KINDS)


def test_entries_without_digest_say_so():
    for entry in list_weights():
        if entry.sha256 is None:
            assert "sha256 unknown" in entry.note


def test_known_facts_of_the_builtin_entries():
    i2p, l2w = get_weights("slam3r_i2p"), get_weights("slam3r_l2w")
    assert (i2p.size_bytes, l2w.size_bytes) == (2_131_831_108, 922_557_296)
    assert i2p.hf_repo == "siyan824/slam3r_i2p" and i2p.filename == "model.safetensors"
    assert "non-commercial" in i2p.licence.lower()
    assert i2p.preprocessing.mean == (0.5, 0.5, 0.5) and i2p.preprocessing.input_size == (224, 224)
    sam_h = get_weights("sam_vit_h")
    assert sam_h.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"
    assert sam_h.preprocessing.input_size == (1024, 1024)
    assert sam_h.preprocessing.resize_mode == "long_side_pad"
    assert [e.name for e in list_weights("sam")] == ["sam_vit_b", "sam_vit_h", "sam_vit_l"]
    dino = get_weights("dino_vits16")
    assert resolve_url(dino) == "https://huggingface.co/timm/vit_small_patch16_224.dino/resolve/main/model.safetensors"
    assert dino.preprocessing.crop_pct == pytest.approx(0.9)


def test_unknown_name_raises_keyerror_listing_known_names():
    with pytest.raises(KeyError) as info:
        get_weights("sam_vit_x")
    message = info.value.args[0]
    assert "sam_vit_x" in message
    for name in ("sam_vit_b", "slam3r_i2p", "dino_vits16"):
        assert name in message


def test_list_weights_filters_by_kind_and_rejects_unknown_kind():
    clip = list_weights("clip")
    assert clip and all(e.kind == "clip" for e in clip)
    assert [e.name for e in list_weights("clip3r_l2w")] == ["slam3r_l2w"]
    with pytest.raises(ValueError, match="unknown kind"):
        list_weights("detector")


def test_resolve_url_honours_hf_endpoint(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8080/")
    assert resolve_url(get_weights("slam3r_l2w")) == "http://127.0.0.1:8080/siyan824/slam3r_l2w/resolve/main/model.safetensors"
    # Plain-URL entries are not Hugging Face files and stay as they are.
    assert resolve_url(get_weights("sam_vit_b")).startswith("https://dl.fbaipublicfiles.com/")
    pinned = _entry(url=None, hf_repo="org/repo", hf_revision="abc123")
    assert resolve_url(pinned) == "http://127.0.0.1:8080/org/repo/resolve/abc123/model.safetensors"


def test_default_cache_dir_env_and_home(monkeypatch, tmp_path):
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path / "w"))
    assert default_cache_dir() == tmp_path / "w"
    monkeypatch.delenv("OV_MAPPING_WEIGHTS")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "ov_mapping" / "weights"


def test_local_path_keeps_same_named_files_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path))
    i2p, l2w = get_weights("slam3r_i2p"), get_weights("slam3r_l2w")
    assert local_path(i2p) == tmp_path / "slam3r_i2p" / "model.safetensors"
    assert local_path(i2p) != local_path(l2w)
    assert local_path(l2w, Path("/data/w")) == Path("/data/w/slam3r_l2w/model.safetensors")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sha256": "abc"}, "sha256"),
        ({"sha256": "A" * 64}, "sha256"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"kind": "detector"}, "kind"),
        ({"hf_repo": "org/repo"}, "exactly one"),
        ({"url": None}, "exactly one"),
        ({"licence": " "}, "licence"),
        ({"filename": "a/b.bin"}, "filename"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_malformed_entries_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        _entry(**overrides)


@pytest.mark.parametrize(
    "args, message",
    [
        (((224,), (0.5,) * 3, (0.5,) * 3, "short_side_crop", "bicubic"), "input_size"),
        (((224, 224), (0.5,) * 2, (0.5,) * 3, "short_side_crop", "bicubic"), "mean and std"),
        (((224, 224), (0.5,) * 3, (0.5, 0.0, 0.5), "short_side_crop", "bicubic"), "std"),
        (((224, 224), (0.5,) * 3, (0.5,) * 3, "stretch", "bicubic"), "resize_mode"),
        (((224, 224), (0.5,) * 3, (0.5,) * 3, "short_side_crop", "nearest"), "interpolation"),
        (((224, 224), (0.5,) * 3, (0.5,) * 3, "short_side_crop", "bicubic", 1.5), "crop_pct"),
    ],
)
def test_malformed_preprocessing_is_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(*args)


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_weights("sam_vit_b").sha256 = None


def test_register_weights_adds_and_refuses_duplicates(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    entry = _entry(name="clip3r_i2p_custom", kind="clip3r_i2p")
    register_weights(entry)
    assert get_weights("clip3r_i2p_custom") is entry
    assert entry in list_weights("clip3r_i2p")
    with pytest.raises(ValueError, match="already registered"):
        register_weights(_entry(name="sam_vit_b"))
    with pytest.raises(TypeError):
        register_weights({"name": "x"})
