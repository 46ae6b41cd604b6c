"""CLIP3R with Ov3R's CLIP injection: the object-level CLIP map (segmentation.clip_map) and the stream feeding its
patch tokens to every I2P / retrieval call (small random networks, a tiny random CLIP, graph masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_mapping.engines import make_runner
from ov_mapping.models.clip import ClipModel
from ov_mapping.models.clip3r import build_i2p, build_l2w
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig
from ov_mapping.reconstruction.preprocess import centre_crop_box
from ov_mapping.segmentation.clip_map import clip_map_patch_tokens, object_clip_map, paint_clip_map
from ov_mapping.segmentation.mask_embedding import MaskClipEmbedder
from ov_mapping.segmentation.mask_sources import Mask, as_mask_array, make_mask_source

CONFIG = StreamConfig(keyframe_stride=None, max_stride=2, initial_window=3, initial_window_fallback=2,
                      window_radius=2, register_group_size=2, num_scene_frames=2, buffer_size=4,
                      l2w_min_confidence=1.5)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def clip(tiny_clip_files) -> ClipModel:
    weights, config = tiny_clip_files
    return ClipModel.from_checkpoint(weights, config=config)


@pytest.fixture(scope="module")
def networks(clip):
    """(I2P with a zero-initialised injection, the same I2P without one, L2W), all small and random."""
    torch.manual_seed(0)
    with_clip = build_i2p("small", clip_dim=clip.embed_dim)
    plain = build_i2p("small")
    plain.load_state_dict({k: v for k, v in with_clip.state_dict().items() if not k.startswith("clip_injection.")})
    return with_clip, plain, build_l2w("small")


def camera_frames(count: int) -> list[np.ndarray]:
    """A pan across a few flat-coloured blocks with mild noise, 320 x 240 uint8: graph masks find the blocks."""
    rng = np.random.default_rng(0)
    width = 320 + 8 * count
    canvas = np.repeat(rng.integers(0, 256, (3, width // 40 + 1, 3)), [80, 80, 80], axis=0)
    canvas = np.repeat(canvas, 40, axis=1)[:, :width]
    canvas = np.clip(canvas + rng.integers(-6, 7, canvas.shape), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(canvas[:, 8 * i : 8 * i + 320]) for i in range(count)]


@pytest.fixture(scope="module")
def frames_and_maps(clip):
    source = make_mask_source("graph")
    frames = camera_frames(10)
    return [(rgb, object_clip_map(rgb, source.generate(rgb), clip)) for rgb in frames]


def run_stream(runner, frames_and_maps, with_maps: bool):
    stream = Clip3rStream(runner, CONFIG)
    out = []
    for i, (rgb, clip_map) in enumerate(frames_and_maps):
        out += stream.push(rgb, 0.1 * i, clip_map=clip_map if with_maps else None)
    return out + stream.flush(), stream


def test_object_clip_map_writes_each_mask_embedding_into_its_pixels(clip):
    rgb = camera_frames(1)[0]
    a = np.zeros((240, 320), bool)
    a[20:120, 30:200] = True
    b = np.zeros((240, 320), bool)
    b[60:200, 150:300] = True
    c = np.zeros((240, 320), bool)
    c[210:230, 10:40] = True
    masks = [Mask(a, 0.9), Mask(b, 0.5), Mask(c, 0.5)]
    expected = MaskClipEmbedder(clip).embed(rgb, as_mask_array(masks, (240, 320)))
    clip_map = object_clip_map(rgb, masks, clip)
    assert clip_map.shape == (240, 320, clip.embed_dim) and clip_map.dtype == np.float32
    assert np.array_equal(clip_map[a], np.broadcast_to(expected[0], (a.sum(), clip.embed_dim)))  # a wins (0.9)
    assert np.array_equal(clip_map[b & ~a], np.broadcast_to(expected[1], ((b & ~a).sum(), clip.embed_dim)))
    assert np.array_equal(clip_map[c], np.broadcast_to(expected[2], (c.sum(), clip.embed_dim)))
    assert not clip_map[~(a | b | c)].any()
    # equal scores: the later mask wins
    swapped = paint_clip_map([Mask(b, 0.5), Mask(a, 0.5)], expected[[1, 0]])
    assert np.array_equal(swapped[a & b][0], expected[0])
    assert not object_clip_map(rgb, [], clip).any()
    with pytest.raises(ValueError, match="one row per mask"):
        paint_clip_map(masks, expected[:2])


def test_patch_tokens_pool_the_model_crop_of_the_map():
    box = centre_crop_box(320, 240)  # x0 = 40, side 240
    clip_map = np.full((240, 320, 4), np.nan, np.float32)
    clip_map[:, 40:280] = 0.0
    clip_map[:, 40:160, 1] = 1.0  # the crop's left half
    tokens = clip_map_patch_tokens(clip_map, box)
    assert tokens.shape == (196, 4) and np.isfinite(tokens).all()  # NaN outside the crop is never read
    grid = tokens.reshape(14, 14, 4)
    assert np.array_equal(grid[:, :7, 1], np.ones((14, 7))) and not grid[:, 7:, 1].any()
    with pytest.raises(ValueError, match="crop box"):
        clip_map_patch_tokens(clip_map[:, :300], box)


def test_zero_injection_reproduces_the_plain_stream_exactly(networks, frames_and_maps):
    with_clip, plain, l2w = networks
    clip_runner = make_runner("torch", i2p=with_clip, l2w=l2w, retrieval_batch=2)
    assert clip_runner.clip_dim == with_clip.clip_injection.clip_dim
    assert make_runner("torch", i2p=plain, l2w=l2w).clip_dim is None
    got, stream = run_stream(clip_runner, frames_and_maps, with_maps=True)
    want, _ = run_stream(make_runner("torch", i2p=plain, l2w=l2w, retrieval_batch=2), frames_and_maps, False)
    assert [r.frame_index for r in got] == list(range(0, 10, stream.keyframe_stride))
    assert len(got) == len(want) and stream._buffer.offered > CONFIG.num_scene_frames  # retrieval ran
    for g, w in zip(got, want):
        assert g.frame_index == w.frame_index
        assert np.array_equal(g.keyframe.pointmap, w.keyframe.pointmap, equal_nan=True)
        assert np.array_equal(g.keyframe.pose, w.keyframe.pose)
    counts = stream.memory_counts()
    assert counts["frames_with_clip"] == counts["frames_with_tokens"] > 0  # CLIP tokens live with the frame's


def test_trained_injection_changes_geometry_and_stays_finite(networks, frames_and_maps):
    with_clip, plain, l2w = networks
    active = build_i2p("small", clip_dim=with_clip.clip_injection.clip_dim)
    active.load_state_dict(with_clip.state_dict())
    torch.manual_seed(1)
    torch.nn.init.normal_(active.clip_injection.out.weight, std=0.5)
    got, stream = run_stream(make_runner("torch", i2p=active, l2w=l2w, retrieval_batch=2), frames_and_maps, True)
    want, _ = run_stream(make_runner("torch", i2p=plain, l2w=l2w, retrieval_batch=2), frames_and_maps, False)
    assert [r.frame_index for r in got] == list(range(0, 10, stream.keyframe_stride))
    for r in got:
        assert np.isfinite(r.keyframe.pose).all() and np.isfinite(r.scale)
        assert np.isfinite(r.keyframe.pointmap).all(-1).any() and not np.isinf(r.keyframe.pointmap).any()
    assert not np.array_equal(got[0].keyframe.pointmap, want[0].keyframe.pointmap, equal_nan=True)


def test_stream_refuses_frames_without_a_fitting_clip_map(networks, frames_and_maps, clip):
    with_clip, plain, l2w = networks
    rgb, clip_map = frames_and_maps[0]
    stream = Clip3rStream(make_runner("torch", i2p=with_clip, l2w=l2w), CONFIG)
    with pytest.raises(ValueError, match="needs its object-level CLIP map"):
        stream.push(rgb, 0.0)
    with pytest.raises(ValueError, match="clip_map must be a float numpy array"):
        stream.push(rgb, 0.0, clip_map=clip_map[:, :, :-1])
    with pytest.raises(ValueError, match="clip_map must be a float numpy array"):
        stream.push(rgb, 0.0, clip_map=clip_map.astype(np.int32))
    with pytest.raises(ValueError, match="NaN"):
        stream.push(rgb, 0.0, clip_map=np.full_like(clip_map, np.nan))
    plain_stream = Clip3rStream(make_runner("torch", i2p=plain, l2w=l2w), CONFIG)
    with pytest.raises(ValueError, match="no CLIP injection"):
        plain_stream.push(rgb, 0.0, clip_map=clip_map)
    assert stream.push(rgb, 0.0, clip_map=clip_map) == [] and stream.memory_counts()["frames_with_clip"] == 1
