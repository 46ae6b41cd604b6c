"""TensorRT backend: engine cache keys and invalidation (no TensorRT needed), shape profiles, and the runtime
path on a GPU with TensorRT (skipped elsewhere)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ov_mapping.engines.engine_cache import EngineCache, make_engine_key
from ov_mapping.engines.graphs import graph_spec
from ov_mapping.engines.tensorrt_engine import ProfileLimits, import_tensorrt, shape_profile
from ov_mapping.models.clip3r import get_config

PROFILE = {"tokens": ((2, 1, 196, 128), (5, 1, 196, 128), (11, 1, 196, 128))}
BASE = dict(graph="i2p", onnx_sha256="ab" * 32, profile=PROFILE, tensorrt_version="10.13.0",
            gpu_name="NVIDIA H100", precision="fp16", workspace_bytes=1 << 30)

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA = torch.cuda.is_available()


def test_cache_key_is_pure_and_canonical():
    a = make_engine_key(**BASE)
    assert a == make_engine_key(**BASE) and a.digest() == make_engine_key(**BASE).digest()
    two = dict(PROFILE, clip=((2, 1, 1, 16), (5, 1, 8, 16), (11, 1, 196, 16)))
    reordered = dict(reversed(list(two.items())))
    assert make_engine_key(**dict(BASE, profile=two)).digest() == make_engine_key(**dict(BASE, profile=reordered)).digest()
    assert make_engine_key(**dict(BASE, profile={"tokens": [[2, 1, 196, 128], [5, 1, 196, 128], [11, 1, 196, 128]]})) == a


@pytest.mark.parametrize("field,value", [
    ("onnx_sha256", "cd" * 32), ("tensorrt_version", "11.4.0"), ("gpu_name", "NVIDIA H200"), ("precision", "bf16"),
    ("profile", {"tokens": ((2, 1, 196, 128), (6, 1, 196, 128), (11, 1, 196, 128))}), ("graph", "retrieval"),
    ("workspace_bytes", 2 << 30),
])
def test_every_part_of_the_key_changes_the_digest(field, value):
    assert make_engine_key(**dict(BASE, **{field: value})).digest() != make_engine_key(**BASE).digest()


def test_bad_keys_are_refused():
    with pytest.raises(ValueError, match="min, opt, max"):
        make_engine_key(**dict(BASE, profile={"tokens": ((2, 1, 196, 128),)}))
    with pytest.raises(ValueError, match="non-empty"):
        make_engine_key(**dict(BASE, onnx_sha256=""))


def test_cache_round_trip_and_invalidation(tmp_path):
    cache = EngineCache(tmp_path)
    key = make_engine_key(**BASE)
    assert cache.load(key) is None
    engine_path = cache.store(key, b"engine-bytes")
    assert cache.load(key) == b"engine-bytes"
    other = make_engine_key(**dict(BASE, gpu_name="NVIDIA L4"))
    assert cache.load(other) is None  # another GPU: rebuild
    engine_path.write_bytes(b"engine-bytes-truncated")
    assert cache.load(key) is None  # edited file
    cache.store(key, b"engine-bytes")
    meta_path = cache.paths(key)[1]
    meta = json.loads(meta_path.read_text())
    meta["key"]["tensorrt_version"] = "9.0"
    meta_path.write_text(json.dumps(meta))
    assert cache.load(key) is None  # metadata of another build under this name
    meta_path.write_text("{not json")
    assert cache.load(key) is None


def test_remove_stale_keeps_only_the_current_build_of_that_graph(tmp_path):
    cache = EngineCache(tmp_path)
    old, new = make_engine_key(**BASE), make_engine_key(**dict(BASE, tensorrt_version="11.4.0"))
    encoder = make_engine_key(**dict(BASE, graph="encoder"))
    for key in (old, new, encoder):
        cache.store(key, b"x")
    removed = cache.remove_stale(new)
    assert set(removed) == set(cache.paths(old))
    assert cache.load(new) == b"x" and cache.load(encoder) == b"x" and cache.load(old) is None


def test_shape_profiles_cover_the_symbolic_axes():
    cfg = get_config("small")
    limits = ProfileLimits()
    i2p = shape_profile(graph_spec("i2p", with_clip=True), cfg, limits, clip_dim=16)
    assert i2p["tokens"] == ((2, 1, 196, 128), (6, 1, 196, 128), (11, 1, 196, 128))
    assert i2p["clip"] == ((2, 1, 1, 16), (6, 1, 196, 16), (11, 1, 196, 16))
    retrieval = shape_profile(graph_spec("retrieval"), cfg, limits)
    assert retrieval["tokens"][2] == (11, 16, 196, 128)
    l2w = shape_profile(graph_spec("l2w"), cfg, replace(limits, scene_views=(1, 4, 8)))
    assert l2w["scene_points"] == ((1, 1, 224, 224, 3), (4, 1, 224, 224, 3), (8, 1, 224, 224, 3))
    assert l2w["key_masks"][2] == (10, 1, 196)
    assert shape_profile(graph_spec("encoder"), cfg, limits)["images"][0] == (1, 3, 224, 224)
    with pytest.raises(ValueError, match="clip_dim"):
        shape_profile(graph_spec("i2p", with_clip=True), cfg, limits)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ProfileLimits(batch=(2, 1, 4))


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here: the missing-package message cannot be seen")
def test_missing_tensorrt_says_what_to_install():
    with pytest.raises(ImportError, match="pip install tensorrt"):
        import_tensorrt()


@pytest.mark.skipif(not (HAS_TRT and HAS_CUDA), reason="needs the tensorrt package and a CUDA GPU")
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_tensorrt_runner_matches_torch(tmp_path, precision, tol):
    from ov_mapping.engines import make_runner
    from ov_mapping.models.clip3r import build_i2p, build_l2w

    torch.manual_seed(0)
    i2p, l2w = build_i2p("small"), build_l2w("small")
    trt_runner = make_runner("tensorrt", i2p=i2p, l2w=l2w, precision=precision, artifacts_dir=tmp_path)
    ref = make_runner("torch", i2p=i2p, l2w=l2w, device="cuda")
    images = torch.rand(4, 3, 224, 224).mul(2).sub(1).numpy()
    tokens, want_tokens = trt_runner.encode(images), ref.encode(images)
    assert tokens[0].is_cuda
    scale = float(want_tokens[0].abs().max())
    torch.testing.assert_close(tokens[0], want_tokens[0], atol=tol * scale, rtol=tol)
    got, want = trt_runner.i2p(want_tokens, 1), ref.i2p(want_tokens, 1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.conf, w.conf, atol=tol * float(np.abs(w.conf).max()), rtol=tol)
    scores = trt_runner.retrieval(want_tokens[:2], want_tokens[2:])
    np.testing.assert_allclose(scores, ref.retrieval(want_tokens[:2], want_tokens[2:]), rtol=tol * 4)
    # A second runner finds the engines in the cache.
    engines = sorted((tmp_path / "tensorrt").glob("*.engine"))
    make_runner("tensorrt", i2p=i2p, l2w=l2w, precision=precision, artifacts_dir=tmp_path)
    assert sorted((tmp_path / "tensorrt").glob("*.engine")) == engines
    assert [p.stat().st_mtime_ns for p in engines] == [p.stat().st_mtime_ns for p in sorted((tmp_path / "tensorrt").glob("*.engine"))]
