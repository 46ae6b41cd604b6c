"""make_runner: backend selection, clear errors, and the PyTorch runner against the networks."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
import torch

from ov_mapping.engines import BACKENDS, check_backend, make_runner
from ov_mapping.models.clip3r import build_i2p, build_l2w


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(3)
    return build_i2p("small"), build_l2w("small")


@pytest.fixture(scope="module")
def runner(nets):
    return make_runner("torch", i2p=nets[0], l2w=nets[1])


@pytest.fixture(scope="module")
def images():
    return torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0)).mul(2).sub(1).numpy()


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="onnxruntime"):
        make_runner("tflite", "small")


def test_missing_runtime_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    with pytest.raises(ImportError, match="'tensorrt'.*pip install tensorrt"):
        check_backend("tensorrt")
    assert set(BACKENDS) == {"torch", "onnxruntime", "tensorrt"}


def test_random_weights_are_announced(caplog):
    with caplog.at_level(logging.WARNING, logger="ov_mapping.engines.factory"):
        make_runner("torch", "small", with_l2w=False)
    assert "RANDOM weights" in caplog.text


def test_encode_gives_one_handle_per_image_matching_single_encodes(runner, images):
    handles = runner.encode(images[:3])
    assert len(handles) == 3 and all(h.shape == (1, 196, 128) for h in handles)
    torch.testing.assert_close(handles[1], runner.encode(images[1:2])[0], atol=1e-4, rtol=1e-4)


def test_torch_runner_matches_the_networks(nets, runner, images):
    i2p, l2w = nets
    tokens = runner.encode(images)
    assert len(tokens) == 4 and tokens[0].shape == (1, 196, 128)
    with torch.no_grad():
        want = i2p(tokens[:3], 2)
    got = runner.i2p(tokens[:3], 2)
    assert len(got) == 3 and all(v.pts3d.dtype == np.float32 and (v.conf >= 1).all() for v in got)
    for v in range(3):  # input order, every view in the reference camera frame
        key = "pts3d" if v == 2 else "pts3d_in_other_view"
        np.testing.assert_allclose(got[v].pts3d, want[v][key][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(got[v].conf, want[v]["conf"][0].numpy(), atol=1e-5)
    pts = np.random.default_rng(0).normal(size=(4, 224, 224, 3)).astype(np.float32)
    regs = runner.l2w(tokens[:2], pts[:2], tokens[2:], pts[2:])
    with torch.no_grad():
        _, keys = l2w(tokens[:2], [torch.from_numpy(p[None]) for p in pts[:2]], tokens[2:],
                      [torch.from_numpy(p[None]) for p in pts[2:]])
    assert len(regs) == 2 and all(r.features is None and (r.conf >= 1).all() for r in regs)
    for k in range(2):
        np.testing.assert_allclose(regs[k].pts3d, keys[k]["pts3d_in_other_view"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(regs[k].conf, keys[k]["conf"][0].numpy(), atol=1e-5)


def test_batched_retrieval_matches_one_window_per_candidate(nets, images):
    tokens = make_runner("torch", i2p=nets[0], with_l2w=False).encode(images)
    candidates, sources = tokens[:3], tokens[3:]
    # retrieval_batch 2: a full chunk and a partial one; 16: one pass
    chunked = make_runner("torch", i2p=nets[0], with_l2w=False, retrieval_batch=2).retrieval(candidates, sources)
    one_pass = make_runner("torch", i2p=nets[0], with_l2w=False).retrieval(candidates, sources)
    assert chunked.shape == (3, 1, 196) and (chunked >= 1).all()
    np.testing.assert_allclose(chunked, one_pass, rtol=1e-5)
    for r, cand in enumerate(candidates):
        with torch.no_grad():
            want = nets[0].retrieval_scores([cand, *sources], 0)[:, 0].numpy()
        np.testing.assert_allclose(chunked[r], want, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_close_to_float32(nets, runner, images):
    low = make_runner("torch", i2p=nets[0], with_l2w=False, precision="bf16")
    got, want = low.encode(images[:1])[0], runner.encode(images[:1])[0]
    assert got.dtype == torch.float32
    assert float((got - want).abs().max()) < 0.1 * float(want.abs().max())


def test_bad_inputs_raise_clear_errors(runner, images):
    tokens = runner.encode(images[:2])
    with pytest.raises(ValueError, match="float32 numpy"):
        runner.encode(images.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(B >= 1, 3, 224, 224\)"):
        runner.encode(images[:, :, :100])
    nan_images = images[:1].copy()
    nan_images[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        runner.encode(nan_images)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        runner.encode(images * 255)
    with pytest.raises(ValueError, match="ref_index"):
        runner.i2p(tokens, 2)
    with pytest.raises(ValueError, match="at least 2"):
        runner.i2p(tokens[:1], 0)
    pts = np.zeros((1, 224, 224, 3), np.float32)
    with pytest.raises(ValueError, match="scene_pts3d"):
        runner.l2w(tokens[:1], np.zeros((2, 224, 224, 3), np.float32), tokens[1:], pts)
    with pytest.raises(ValueError, match="key_pts3d"):
        runner.l2w(tokens[:1], pts, tokens[1:], np.zeros((2, 224, 224, 3), np.float32))
    nan_pts = pts.copy()
    nan_pts[0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="dense pointmaps"):
        runner.l2w(tokens[:1], nan_pts, tokens[1:], pts)
    with pytest.raises(ValueError, match="candidates and sources"):
        runner.retrieval([], tokens)
    with pytest.raises(ValueError, match="clip_features"):
        runner.i2p(tokens, 0, clip_features=[torch.zeros(1, 3, 8)] * 2)
    with pytest.raises(ValueError, match="without the L2W"):
        make_runner("torch", i2p=runner.graphs.i2p, with_l2w=False).l2w(tokens[:1], None, tokens[1:], None)
    with pytest.raises(ValueError, match="unknown precision"):
        make_runner("torch", i2p=runner.graphs.i2p, with_l2w=False, precision="int8")
    with pytest.raises(ValueError, match="threads"):
        make_runner("torch", i2p=runner.graphs.i2p, with_l2w=False, threads=-1)
    with pytest.raises(ValueError, match="retrieval_batch"):
        make_runner("torch", i2p=runner.graphs.i2p, with_l2w=False, retrieval_batch=0)


def test_threads_set_the_torch_intra_op_pool(nets):
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    try:
        make_runner("torch", i2p=nets[0], with_l2w=False, threads=wanted)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
