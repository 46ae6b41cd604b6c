"""The CLIP3R stream on real (small-config, randomly initialised) networks through the engines' PyTorch runner
(``make_runner("torch", ...)``): plumbing end to end and bounded memory on a long stream. The runner's own
semantics (outputs equal to direct network calls, batched retrieval, input checks) are tested in
test_engines_factory.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_mapping.engines import EngineRunner, make_runner
from ov_mapping.models.clip3r import build_i2p, build_l2w
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def runner() -> EngineRunner:
    torch.manual_seed(0)
    return make_runner("torch", i2p=build_i2p("small"), l2w=build_l2w("small"), retrieval_batch=2)


def camera_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth synthetic pan across a random texture, 320 x 240 uint8 (what a camera would send)."""
    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 256, (240, 320 + 4 * count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(canvas[:, 4 * i : 4 * i + 320]) for i in range(count)]


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
