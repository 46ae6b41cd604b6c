"""CLIP3R weights with the CLIP injection in the reconstruction node's library code: the ClipMapper makes each frame's
object-level CLIP map, and the SegmentingStream hands keyframes back with their frame's masks and embeddings as
upstream segments at pointmap resolution (small random networks, a tiny random CLIP, graph masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_mapping.engines import make_runner
from ov_mapping.models.clip3r import build_i2p, build_l2w
from ov_mapping.reconstruction.clip3r_factory import (ClipMapSettings, SegmentingStream, build_clip_mapper,
                                                      crop_mask_to_pointmap, masks_to_segments)
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig
from ov_mapping.segmentation.mask_sources import Mask

CONFIG = StreamConfig(keyframe_stride=2, initial_window=3, initial_window_fallback=2, window_radius=2,
                      register_group_size=2, num_scene_frames=2, buffer_size=4, l2w_min_confidence=1.5)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_files) -> ClipMapSettings:
    weights, config = tiny_clip_files
    return ClipMapSettings(mask_source="graph", clip_model="tiny", clip_weights=weights, clip_config=config)


@pytest.fixture(scope="module")
def mapper(tiny_clip):
    from ov_mapping.models.clip import load_clip

    dim = load_clip(tiny_clip.clip_model, tiny_clip.clip_weights, tiny_clip.clip_config).embed_dim
    return build_clip_mapper(tiny_clip, dim)[0]


def make_stream(clip_dim) -> Clip3rStream:
    torch.manual_seed(0)
    runner = make_runner("torch", i2p=build_i2p("small", clip_dim=clip_dim), l2w=build_l2w("small"),
                         retrieval_batch=2)
    return Clip3rStream(runner, CONFIG)


def camera_frames(count: int) -> list[np.ndarray]:
    """A pan across flat-coloured blocks with mild noise, 320 x 240 uint8: graph masks find the blocks."""
    rng = np.random.default_rng(0)
    width = 320 + 8 * count
    canvas = np.repeat(rng.integers(0, 256, (3, width // 40 + 1, 3)), [80, 80, 80], axis=0)
    canvas = np.repeat(canvas, 40, axis=1)[:, :width]
    canvas = np.clip(canvas + rng.integers(-6, 7, canvas.shape), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(canvas[:, 8 * i : 8 * i + 320]) for i in range(count)]


def test_crop_mask_takes_the_streams_centred_square_and_resizes_by_nearest():
    mask = np.zeros((240, 320), bool)  # centred square: columns 40..279
    mask[:, 160:280] = True  # its right half
    out = crop_mask_to_pointmap(mask, (224, 224))
    assert out.shape == (224, 224) and out.dtype == bool
    assert out[:, 112:].all() and not out[:, :112].any()
    outside = np.zeros((240, 320), bool)
    outside[:, :40] = True
    assert not crop_mask_to_pointmap(outside, (224, 224)).any()
    with pytest.raises(ValueError, match="bool"):
        crop_mask_to_pointmap(mask.astype(np.uint8), (224, 224))


def test_masks_to_segments_drops_masks_outside_the_crop_and_keeps_embeddings():
    inside = np.zeros((240, 320), bool)
    inside[50:150, 100:200] = True
    outside = np.zeros((240, 320), bool)
    outside[:, 290:] = True
    embeddings = np.arange(12, dtype=np.float64).reshape(3, 4)
    segments = masks_to_segments([Mask(outside), Mask(inside, 0.7), Mask(inside | outside)], embeddings, (224, 224))
    assert [s.segment_id for s in segments] == [0, 1]
    assert segments[0].score == pytest.approx(0.7)
    np.testing.assert_array_equal(segments[0].clip_embedding, embeddings[1].astype(np.float32))
    assert segments[1].clip_embedding.dtype == np.float32
    assert segments[0].points.shape == (0, 3) and segments[0].descriptor.size == 0
    with pytest.raises(ValueError, match="one row per mask"):
        masks_to_segments([Mask(inside)], embeddings, (224, 224))


def test_mapper_makes_the_clip_map_of_its_masks(mapper):
    rgb = camera_frames(1)[0]
    clip_map, masks, embeddings = mapper.make(rgb)
    assert clip_map.shape == (240, 320, mapper.embed_dim) and clip_map.dtype == np.float32
    assert len(masks) >= 2 and embeddings.shape == (len(masks), mapper.embed_dim)
    biggest = max(range(len(masks)), key=lambda i: masks[i].area)
    inside = clip_map[masks[biggest].mask]
    assert np.isclose(inside, embeddings[biggest]).all(axis=1).mean() > 0.5


def test_build_clip_mapper_refuses_missing_weights_and_a_wrong_dimension(tmp_path, tiny_clip, mapper):
    missing = ClipMapSettings(mask_source="graph", clip_model="tiny", clip_weights=str(tmp_path / "none.pt"),
                              clip_config=tiny_clip.clip_config)
    with pytest.raises(FileNotFoundError, match="clip3r_clip_weights"):
        build_clip_mapper(missing, mapper.embed_dim)
    with pytest.raises(ValueError, match="embeds in"):
        build_clip_mapper(tiny_clip, mapper.embed_dim + 1)
    with pytest.raises(ValueError, match="mask source"):
        build_clip_mapper(ClipMapSettings(mask_source="passthrough"), mapper.embed_dim)


def test_stream_keyframes_carry_their_frames_segments_and_memory_stays_bounded(mapper):
    calls = []

    class CountingMapper:
        embed_dim = mapper.embed_dim

        def make(self, rgb):
            calls.append(rgb)
            return mapper.make(rgb)

    stream = SegmentingStream(make_stream(mapper.embed_dim), CountingMapper())
    out, stored = [], []
    for i, rgb in enumerate(camera_frames(12)):
        out += stream.push(rgb, 0.1 * i)
        stored.append(stream.stored_frames)
    out += stream.flush()
    assert len(calls) == 6  # stride 2: the frames the stream skips get no masks or CLIP
    assert [item.frame_index for item, _ in out] == [0, 2, 4, 6, 8, 10]
    for item, segments in out:
        assert segments, f"keyframe of frame {item.frame_index} has no segments"
        for segment in segments:
            assert segment.mask.shape == item.keyframe.pointmap.shape[:2] == (224, 224)
            assert segment.clip_embedding.shape == (mapper.embed_dim,)
    # only frames still waiting for their keyframe are kept; all are gone once the last keyframe is out
    assert max(stored) <= 4 and stream.stored_frames == 0


def test_segmenting_stream_needs_a_clip_injection_of_the_mappers_dimension(mapper):
    with pytest.raises(ValueError, match="no CLIP injection"):
        SegmentingStream(make_stream(None), mapper)
    with pytest.raises(ValueError, match="CLIP dim"):
        SegmentingStream(make_stream(mapper.embed_dim + 1), mapper)


def test_segments_beyond_capacity_are_dropped_oldest_first(mapper):
    stream = SegmentingStream(make_stream(mapper.embed_dim), mapper, capacity=1)
    out = []
    for i, rgb in enumerate(camera_frames(6)):
        out += stream.push(rgb, 0.1 * i)
        assert stream.stored_frames <= 1
    out += stream.flush()
    # frames 0 and 2 come out together, after frame 4 was mapped: only the newest waiting frame kept its segments
    by_frame = {item.frame_index: segments for item, segments in out}
    assert sorted(by_frame) == [0, 2, 4]
    assert by_frame[0] == [] and by_frame[2] == [] and by_frame[4]
