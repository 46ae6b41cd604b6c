"""Keyframe, Segment, SegmentedKeyframe and Instance messages <-> core types: exact round trips and bad input."""

from dataclasses import dataclass, replace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from ov_mapping.core.types import CameraIntrinsics, Keyframe, Segment, SegmentedKeyframe
from ov_mapping.geometry.transforms import quaternion_to_matrix
from ov_mapping.msg import Keyframe as KeyframeMsg
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.ros.conversions import (
    ConversionError,
    array_to_image,
    instance_to_msg,
    instances_to_msg,
    keyframe_to_msg,
    msg_to_instance,
    msg_to_instances,
    msg_to_keyframe,
    msg_to_segment,
    msg_to_segmented_keyframe,
    msgs_to_segments,
    segment_to_msg,
    segmented_keyframe_to_msg,
)

RNG = np.random.default_rng(3)
STAMP = 1_700_000_000.123456789


def make_keyframe(feature_map=True):
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(np.array([0.1, -0.4, 0.3, 0.8]))
    pose[:3, 3] = [1.5, -2.0, 0.25]
    pointmap = RNG.normal(size=(3, 4, 3)).astype(np.float32)
    pointmap[1, 2] = np.nan
    return Keyframe(
        keyframe_id=42,
        stamp=STAMP,
        rgb=RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        intrinsics=CameraIntrinsics(fx=7.5, fy=7.0, cx=3.5, cy=2.5, width=8, height=6),
        pose=pose,
        pointmap=pointmap,
        confidence=RNG.random((3, 4)).astype(np.float32),
        metric_scale=False,
        feature_map=RNG.normal(size=(5, 2, 3)).astype(np.float32) if feature_map else None,
    )


def make_segment(segment_id=7, clip=True, shape=(3, 4)):
    return Segment(
        segment_id=segment_id,
        mask=RNG.random(shape) > 0.5,
        points=RNG.normal(size=(5, 3)).astype(np.float32),
        descriptor=RNG.normal(size=16).astype(np.float32),
        clip_embedding=RNG.normal(size=8).astype(np.float32) if clip else None,
        label="mug",
        label_score=0.75,
        score=0.5,
    )


def assert_keyframes_equal(a, b):
    assert (a.keyframe_id, a.stamp, a.intrinsics) == (b.keyframe_id, b.stamp, b.intrinsics)
    assert a.metric_scale == b.metric_scale
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_allclose(a.pose, b.pose, atol=1e-14)
    assert a.pointmap.dtype == b.pointmap.dtype == np.float32
    np.testing.assert_array_equal(a.pointmap, b.pointmap)  # NaN-aware
    np.testing.assert_array_equal(a.confidence, b.confidence)
    if a.feature_map is None:
        assert b.feature_map is None
    else:
        assert b.feature_map.shape == a.feature_map.shape
        np.testing.assert_array_equal(a.feature_map, b.feature_map)


def assert_segments_equal(a, b):
    assert (a.segment_id, a.label, a.label_score, a.score) == (b.segment_id, b.label, b.label_score, b.score)
    assert b.mask.dtype == bool
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.descriptor, b.descriptor)
    if a.clip_embedding is None:
        assert b.clip_embedding is None
    else:
        np.testing.assert_array_equal(a.clip_embedding, b.clip_embedding)


def test_keyframe_message_fields():
    keyframe = make_keyframe()
    msg = keyframe_to_msg(keyframe, frame_id="world", camera_frame_id="cam")
    assert msg.header.frame_id == "world" and msg.keyframe_id == 42 and not msg.metric_scale
    assert msg.header.stamp.sec == 1_700_000_000
    assert abs(msg.header.stamp.nanosec - 123_456_789) < 240  # float64 spacing at epoch times is 238 ns
    assert msg.image.encoding == "rgb8" and msg.image.header.frame_id == "cam"
    assert msg.pointmap.encoding == "32FC3" and msg.pointmap.header.frame_id == "world"
    assert msg.confidence.encoding == "32FC1" and (msg.pointmap.height, msg.pointmap.width) == (3, 4)
    assert (msg.feature_dim, msg.feature_height, msg.feature_width, len(msg.feature_map)) == (5, 2, 3, 30)
    assert msg.camera_info.header.frame_id == "cam" and msg.camera_info.k[0] == 7.5
    assert len(msg.segments) == 0


def test_keyframe_round_trip():
    keyframe = make_keyframe()
    assert_keyframes_equal(keyframe, msg_to_keyframe(keyframe_to_msg(keyframe)))


def test_keyframe_round_trip_through_serialisation():
    keyframe = make_keyframe()
    msg = deserialize_message(serialize_message(keyframe_to_msg(keyframe)), KeyframeMsg)
    assert_keyframes_equal(keyframe, msg_to_keyframe(msg))


def test_keyframe_without_features():
    keyframe = make_keyframe(feature_map=False)
    msg = keyframe_to_msg(keyframe)
    assert (msg.feature_dim, len(msg.feature_map)) == (0, 0)
    assert msg_to_keyframe(msg).feature_map is None


def test_keyframe_carries_upstream_segments():
    segments = [make_segment(1), make_segment(2, clip=False)]
    msg = keyframe_to_msg(make_keyframe(), segments=segments)
    assert [s.segment_id for s in msg.segments] == [1, 2]
    for a, b in zip(segments, msgs_to_segments(msg.segments)):
        assert_segments_equal(a, b)


def test_segment_round_trip_and_mask_encoding():
    segment = make_segment()
    msg = segment_to_msg(segment, stamp=2.0, frame_id="cam")
    assert msg.mask.encoding == "mono8" and set(np.unique(np.frombuffer(msg.mask.data, np.uint8))) <= {0, 255}
    assert len(msg.points) == 15 and msg.mask.header.frame_id == "cam"
    assert_segments_equal(segment, msg_to_segment(msg))
    no_clip = make_segment(clip=False)
    assert_segments_equal(no_clip, msg_to_segment(segment_to_msg(no_clip)))


def test_segment_with_no_points_or_descriptor():
    segment = replace(make_segment(), points=np.zeros((0, 3), np.float32), descriptor=np.zeros(0, np.float32))
    back = msg_to_segment(segment_to_msg(segment))
    assert back.points.shape == (0, 3) and back.descriptor.shape == (0,)


def test_segmented_keyframe_round_trip():
    segmented = SegmentedKeyframe(make_keyframe(), [make_segment(1), make_segment(2)], mask_source="felzenszwalb")
    msg = deserialize_message(serialize_message(segmented_keyframe_to_msg(segmented)), SegmentedKeyframeMsg)
    assert len(msg.keyframe.segments) == 0 and msg.mask_source == "felzenszwalb"
    back = msg_to_segmented_keyframe(msg)
    assert back.mask_source == "felzenszwalb"
    assert_keyframes_equal(segmented.keyframe, back.keyframe)
    assert len(back.segments) == 2
    for a, b in zip(segmented.segments, back.segments):
        assert_segments_equal(a, b)


def test_mask_must_match_pointmap():
    segmented = SegmentedKeyframe(make_keyframe(), [make_segment(shape=(6, 8))])
    with pytest.raises(ConversionError, match="mask is \\(6, 8\\) but the pointmap is \\(3, 4\\)"):
        segmented_keyframe_to_msg(segmented)
    msg = segmented_keyframe_to_msg(SegmentedKeyframe(make_keyframe(), [make_segment()]))
    msg.segments[0].mask = array_to_image(np.zeros((6, 8), np.uint8), "mono8")
    with pytest.raises(ConversionError, match="mask is \\(6, 8\\)"):
        msg_to_segmented_keyframe(msg)


def test_bad_keyframe_messages():
    msg = keyframe_to_msg(make_keyframe())
    msg.feature_width = 4
    with pytest.raises(ConversionError, match="feature_map has 30 values but .* = 5 \\* 2 \\* 4"):
        msg_to_keyframe(msg)
    msg = keyframe_to_msg(make_keyframe())
    msg.pointmap = array_to_image(np.zeros((3, 4, 3), np.uint8), "rgb8")
    with pytest.raises(ConversionError, match="pointmap must be 32FC3, got 'rgb8'"):
        msg_to_keyframe(msg)
    msg = keyframe_to_msg(make_keyframe())
    msg.confidence = array_to_image(np.zeros((2, 2), np.float32), "32FC1")
    with pytest.raises(ConversionError, match="confidence is \\(2, 2\\) but the pointmap is \\(3, 4\\)"):
        msg_to_keyframe(msg)
    msg = keyframe_to_msg(make_keyframe())
    msg.camera_info.width = 16
    with pytest.raises(ConversionError, match="image is 8x6 but camera_info is 16x6"):
        msg_to_keyframe(msg)


def test_keyframe_from_bgr_image():
    keyframe = make_keyframe()
    msg = keyframe_to_msg(keyframe)
    msg.image = array_to_image(np.ascontiguousarray(keyframe.rgb[:, :, ::-1]), "bgr8")
    np.testing.assert_array_equal(msg_to_keyframe(msg).rgb, keyframe.rgb)


def test_bad_keyframe_inputs():
    with pytest.raises(ConversionError, match="rgb is 8x6 but intrinsics are 9x6"):
        keyframe_to_msg(replace(make_keyframe(), intrinsics=CameraIntrinsics(7.5, 7.0, 3.5, 2.5, 9, 6)))
    with pytest.raises(ConversionError, match="32FC3 image must have dtype float32, got float64"):
        keyframe_to_msg(replace(make_keyframe(), pointmap=np.zeros((3, 4, 3))))
    with pytest.raises(ConversionError, match="rigid 4x4"):
        keyframe_to_msg(replace(make_keyframe(), pose=np.diag([2.0, 2.0, 2.0, 1.0])))


def test_bad_segments():
    msg = segment_to_msg(make_segment())
    msg.points = msg.points[:4]
    with pytest.raises(ConversionError, match="4 values, not a multiple of 3"):
        msg_to_segment(msg)
    msg = segment_to_msg(make_segment())
    msg.mask = array_to_image(np.zeros((3, 4), np.float32), "32FC1")
    with pytest.raises(ConversionError, match="mask must be mono8, got '32FC1'"):
        msg_to_segment(msg)
    with pytest.raises(ConversionError, match="points must be \\(N, 3\\) float"):
        segment_to_msg(replace(make_segment(), points=np.zeros((5, 2), np.float32)))
    with pytest.raises(ConversionError, match="mask must be a \\(h, w\\) bool"):
        segment_to_msg(replace(make_segment(), mask=np.zeros((3, 4), np.float32)))


# Instances


@dataclass
class Record:
    instance_id: int
    centroid: tuple
    box_center: tuple
    box_size: tuple
    label: str = "chair"
    num_points: int = 120


def test_instance_from_dict_round_trip():
    box_pose = np.eye(4)
    box_pose[:3, :3] = quaternion_to_matrix(np.array([0.0, 0.0, 0.38268343, 0.92387953]))
    box_pose[:3, 3] = [1.0, 2.0, 0.5]
    record = {"instance_id": 3, "label": "mug", "label_score": 0.875, "centroid": [1.1, 2.1, 0.4],
              "box_pose": box_pose, "box_size": [0.1, 0.2, 0.3], "num_points": 500, "num_observations": 4}
    msg = instance_to_msg(record)
    assert (msg.instance_id, msg.label, msg.num_points, msg.num_observations) == (3, "mug", 500, 4)
    back = msg_to_instance(msg)
    assert back["label_score"] == 0.875
    np.testing.assert_allclose(back["box_pose"], box_pose, atol=1e-7)  # the quaternion above has 8 digits
    np.testing.assert_allclose(back["centroid"], [1.1, 2.1, 0.4])
    np.testing.assert_allclose(back["box_size"], [0.1, 0.2, 0.3])


def test_instance_from_dataclass_with_axis_aligned_box():
    msg = instance_to_msg(Record(9, (0.0, 1.0, 2.0), (0.5, 1.0, 2.0), (1.0, 1.0, 1.0)))
    assert (msg.instance_id, msg.label, msg.num_points) == (9, "chair", 120)
    assert (msg.num_observations, msg.label_score) == (0, 0.0)
    assert (msg.box_center.position.x, msg.box_center.orientation.w) == (0.5, 1.0)


def test_instance_array_round_trip():
    records = [Record(i, (0.0, 0.0, float(i)), (0.0, 0.0, float(i)), (1.0, 2.0, 3.0)) for i in range(3)]
    msg = instances_to_msg(records, frame_id="map", stamp=8.0)
    assert msg.header.frame_id == "map" and msg.header.stamp.sec == 8
    assert [r["instance_id"] for r in msg_to_instances(msg)] == [0, 1, 2]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"centroid": None}, "no 'centroid'"),
        ({"box_size": [1.0, -1.0, 1.0]}, "non-negative"),
        ({"box_size": [1.0, 1.0]}, "box_size must be 3 finite numbers"),
        ({"centroid": "here"}, "centroid must be 3 finite numbers, got .here."),
        ({"box_pose": np.eye(4)}, "exactly one of 'box_pose'"),
        ({"box_center": None}, "exactly one of 'box_pose'"),
        ({"instance_id": -1}, "instance_id must be an integer in \\[0, 2\\^32\\)"),
        ({"num_points": 2.5}, "num_points must be an integer"),
    ],
)
def test_bad_instance_records(changes, message):
    record = {"instance_id": 1, "centroid": [0.0, 0.0, 0.0], "box_center": [0.0, 0.0, 0.0], "box_size": [1.0] * 3}
    record.update(changes)
    record = {key: value for key, value in record.items() if value is not None}
    with pytest.raises(ConversionError, match=message):
        instance_to_msg(record)
