"""Building the segmentation stage from node parameters: what is built, and why nothing is when weights are missing."""

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, Keyframe, Segment
from ov_mapping.segmentation.factory import SegmenterConfig, build_segmenter, upsample_mask


def _two_box_keyframe() -> Keyframe:
    rgb = np.full((64, 64, 3), 40, np.uint8)
    rgb[8:40, 8:30] = (220, 30, 30)
    rgb[20:56, 36:60] = (30, 30, 220)
    v, u = np.mgrid[0:64, 0:64].astype(np.float32)
    pointmap = np.stack([u / 64, v / 64, np.full_like(u, 2.0)], axis=-1)
    pointmap[8:40, 8:30, 2] = 1.0
    pointmap[20:56, 36:60, 2] = 1.5
    return Keyframe(0, 0.0, rgb, CameraIntrinsics(60, 60, 32, 32, 64, 64), np.eye(4), pointmap,
                    np.ones((64, 64), np.float32))


def test_passthrough_and_missing_clip_weights_build_nothing_and_say_why(tmp_path, monkeypatch):
    assert build_segmenter(SegmenterConfig(mask_source="passthrough")) == (None, "mask_source is 'passthrough'")
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path))  # an empty weights cache
    segmenter, reason = build_segmenter(SegmenterConfig(mask_source="graph"))
    assert segmenter is None and "no CLIP weights" in reason and "download-weights" in reason


def test_graph_segmenter_with_a_custom_clip_segments_a_keyframe(tiny_clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path))
    weights, config = tiny_clip_files
    segmenter, reason = build_segmenter(SegmenterConfig(mask_source="auto", clip_weights=weights,
                                                        clip_config=config, min_mask_area=50))
    assert segmenter is not None and "graph" in reason and "DINO: no weights" in reason
    result = segmenter.process(_two_box_keyframe())
    depths = sorted(round(float(np.median(s.points[:, 2])), 2) for s in result.segments)
    assert 1.0 in depths and 1.5 in depths  # one segment on each box
    for segment in result.segments:
        assert segment.clip_embedding.shape == (32,)
        assert np.isclose(np.linalg.norm(segment.descriptor), 1.0, atol=1e-5)


def test_upstream_segments_are_reused_instead_of_new_masks(tiny_clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path))
    weights, config = tiny_clip_files
    segmenter, _ = build_segmenter(SegmenterConfig(mask_source="graph", clip_weights=weights, clip_config=config))
    keyframe = _two_box_keyframe()
    mask = np.zeros((64, 64), bool)
    mask[8:40, 8:30] = True
    upstream = [Segment(3, mask, np.zeros((0, 3), np.float32), np.zeros(0, np.float32))]
    result = segmenter.process(keyframe, upstream)
    assert result.mask_source == "upstream" and len(result.segments) == 1
    assert np.allclose(result.segments[0].points[:, 2], 1.0)


def test_upsample_mask_keeps_blocks():
    mask = np.array([[True, False], [False, True]])
    up = upsample_mask(mask, 4, 6)
    assert up.shape == (4, 6) and up[:2, :3].all() and not up[:2, 3:].any() and up[2:, 3:].all()
