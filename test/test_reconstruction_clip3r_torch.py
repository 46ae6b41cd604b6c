"""The CLIP3R stream on real (small-config, randomly initialised) networks through TorchClip3rRunner:
runner semantics, plumbing end to end, bounded memory on a long stream, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_mapping.models.clip3r import build_i2p, build_l2w
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig, TorchClip3rRunner


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and far faster than on two when other work shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runner() -> TorchClip3rRunner:
    torch.manual_seed(0)
    return TorchClip3rRunner(build_i2p("small"), build_l2w("small"), retrieval_batch=2)


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, 224, 224)).astype(np.float32)


def camera_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth synthetic pan across a random texture, 320 x 240 uint8 (what a camera would send)."""
    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 256, (240, 320 + 4 * count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(canvas[:, 4 * i : 4 * i + 320]) for i in range(count)]


def test_encode_gives_one_handle_per_image_matching_single_encodes(runner):
    batch = images(3)
    handles = runner.encode(batch)
    assert len(handles) == 3 and all(h.shape == (1, 196, 128) for h in handles)
    single = runner.encode(batch[1:2])[0]
    torch.testing.assert_close(handles[1], single, atol=1e-4, rtol=1e-4)


def test_i2p_returns_every_view_in_the_reference_frame_order(runner):
    tokens = runner.encode(images(3))
    views = runner.i2p(tokens, 1)
    assert len(views) == 3
    assert all(v.pts3d.shape == (224, 224, 3) and v.conf.shape == (224, 224) for v in views)
    assert all(v.pts3d.dtype == np.float32 and (v.conf >= 1).all() for v in views)
    with torch.inference_mode():
        direct = runner.i2p_model(tokens, 1)
    np.testing.assert_allclose(views[1].pts3d, direct[1]["pts3d"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(views[0].pts3d, direct[0]["pts3d_in_other_view"][0].numpy(), atol=1e-6)


def test_batched_retrieval_matches_one_window_per_candidate(runner):
    tokens = runner.encode(images(5, seed=1))
    candidates, sources = tokens[:3], tokens[3:]
    scores = runner.retrieval(candidates, sources)  # retrieval_batch=2: two chunks
    assert scores.shape == (3, 2, 196)
    for r, cand in enumerate(candidates):
        with torch.inference_mode():
            expected = runner.i2p_model.retrieval_scores([cand, *sources], 0)[:, 0]
        np.testing.assert_allclose(scores[r], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_l2w_registers_keyframes(runner):
    tokens = runner.encode(images(3, seed=2))
    pts = np.random.default_rng(0).normal(size=(3, 224, 224, 3)).astype(np.float32)
    regs = runner.l2w(tokens[:2], pts[:2], tokens[2:], pts[2:])
    assert len(regs) == 1 and regs[0].pts3d.shape == (224, 224, 3) and regs[0].features is None
    assert np.isfinite(regs[0].pts3d).all() and (regs[0].conf >= 1).all()


def test_stream_plumbing_on_small_random_networks(runner):
    config = StreamConfig(keyframe_stride=None, max_stride=2, window_radius=2, register_group_size=2,
                          num_scene_frames=2, buffer_size=6, l2w_min_confidence=1.5)
    stream = Clip3rStream(runner, config)
    results = []
    for i, rgb in enumerate(camera_frames(12)):
        results += stream.push(rgb, 0.1 * i)
    results += stream.flush()
    stride = stream.keyframe_stride
    assert stride in (1, 2)
    assert [r.frame_index for r in results] == list(range(0, 12, stride))
    assert [r.keyframe.keyframe_id for r in results] == list(range(len(results)))
    for r in results:
        kf = r.keyframe
        assert np.isfinite(kf.pose).all() and np.allclose(kf.pose[:3, :3] @ kf.pose[:3, :3].T, np.eye(3), atol=1e-6)
        assert np.isfinite(r.scale) and r.scale > 0
        assert kf.pointmap.shape == (224, 224, 3) and kf.pointmap.dtype == np.float32
        finite = np.isfinite(kf.pointmap).all(-1)
        assert finite.any() and not np.isinf(kf.pointmap).any()  # dropped points are NaN, never inf
        assert kf.rgb.shape == (240, 240, 3) and (kf.intrinsics.width, kf.intrinsics.height) == (240, 240)
        assert not kf.metric_scale


def test_memory_stays_bounded_on_a_long_stream(runner):
    config = StreamConfig(keyframe_stride=1, initial_window=3, window_radius=1, register_group_size=3,
                          num_scene_frames=2, buffer_size=4)
    stream = Clip3rStream(runner, config)
    bound = config.window_radius + config.lookahead + 1 + config.register_group_size + config.buffer_size
    produced = 0
    for i, rgb in enumerate(camera_frames(40, seed=3)):
        produced += len(stream.push(rgb, 0.1 * i))
        counts = stream.memory_counts()
        assert counts["frames_with_tokens"] <= bound, counts
        assert counts["buffer"] <= config.buffer_size and counts["pending"] < config.register_group_size
        assert counts["recent"] <= config.window_radius + 1
    # 3 initial keyframes, then 37 tracked ones registered three by three: one is still pending
    assert produced == 39 and stream.memory_counts()["pending"] == 1
    assert len(stream.flush()) == 1 and stream.memory_counts()["pending"] == 0
    assert stream._buffer.offered == 40  # every keyframe was offered to the 4-slot buffer


def test_runner_rejects_bad_inputs_clearly(runner):
    with pytest.raises(ValueError, match="float32"):
        runner.encode(images(1).astype(np.float64))
    with pytest.raises(ValueError, match=r"\(B >= 1, 3, 224, 224\)"):
        runner.encode(np.zeros((1, 3, 112, 112), dtype=np.float32))
    bad = images(1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        runner.encode(bad)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        runner.encode(images(1) * 255)
    tokens = runner.encode(images(2))
    pts = np.zeros((1, 224, 224, 3), dtype=np.float32)
    nan_pts = pts.copy()
    nan_pts[0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="dense pointmaps"):
        runner.l2w(tokens[:1], nan_pts, tokens[1:], pts)
    with pytest.raises(ValueError, match="key_pts3d"):
        runner.l2w(tokens[:1], pts, tokens[1:], np.zeros((2, 224, 224, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="dtype"):
        TorchClip3rRunner(runner.i2p_model, runner.l2w_model, dtype=torch.int32)
