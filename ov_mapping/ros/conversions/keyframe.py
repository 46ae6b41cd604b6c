"""``ov_mapping/Keyframe``, ``Segment`` and ``SegmentedKeyframe`` <-> the core types of the same names.

Round trips are exact: images, pointmaps, confidences, features, masks, points and descriptors keep every bit;
the pose comes back within float64 rounding (it travels as a quaternion) and the stamp to the nanosecond.
Headers: the keyframe's and the pointmap's/confidence's ``frame_id`` is the world (map) frame; the image's,
camera info's and masks' is the camera's optical frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

import numpy as np

from ov_mapping.core.types import Keyframe, Segment, SegmentedKeyframe
from ov_mapping.msg import Keyframe as KeyframeMsg
from ov_mapping.msg import Segment as SegmentMsg
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.ros.conversions.buffers import fill_float32_field, new_message, read_float32_field
from ov_mapping.ros.conversions.camera import camera_info_to_intrinsics, intrinsics_to_camera_info
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header, seconds_to_stamp, stamp_to_seconds
from ov_mapping.ros.conversions.image import array_to_image, image_to_array, image_to_rgb
from ov_mapping.ros.conversions.pose import matrix_to_pose, pose_to_matrix

_MASK_ON = 255


def _float_vector(name: str, values: Optional[np.ndarray]) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.floating) or values.size == 0):
        raise ConversionError(f"{name} must be a (D,) float array, got {values.shape} {values.dtype}")
    return values


def segment_to_msg(segment: Segment, stamp: Stamp = 0.0, frame_id: str = "") -> SegmentMsg:
    """A Segment message: mask as mono8 0/255, points flattened (N * 3), empty clip_embedding when None."""
    mask = np.asarray(segment.mask)
    if mask.ndim != 2 or not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
        raise ConversionError(
            f"segment {segment.segment_id} mask must be a (h, w) bool array, got {mask.shape} {mask.dtype}"
        )
    points = np.asarray(segment.points)
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.floating):
        raise ConversionError(
            f"segment {segment.segment_id} points must be (N, 3) float, got {points.shape} {points.dtype}"
        )
    clip = np.zeros(0, np.float32) if segment.clip_embedding is None else segment.clip_embedding
    msg = new_message(
        SegmentMsg,
        segment_id=int(segment.segment_id),
        mask=array_to_image(np.where(mask != 0, np.uint8(_MASK_ON), np.uint8(0)), "mono8", stamp, frame_id),
        score=float(segment.score),
        label=str(segment.label),
        label_score=float(segment.label_score),
    )
    # Array fields go through the setters, which keep them without a copy (see buffers.py).
    msg.clip_embedding = fill_float32_field(_float_vector("clip_embedding", clip))
    msg.descriptor = fill_float32_field(_float_vector("descriptor", segment.descriptor))
    msg.points = fill_float32_field(points)
    return msg


def msg_to_segment(msg: SegmentMsg) -> Segment:
    """A core Segment: any non-zero mono8/8UC1 mask pixel is inside; an empty clip_embedding becomes None."""
    if msg.mask.encoding not in ("mono8", "8UC1"):
        raise ConversionError(f"segment {msg.segment_id} mask must be mono8, got {msg.mask.encoding!r}")
    points = read_float32_field(msg.points)
    if points.size % 3:
        raise ConversionError(f"segment {msg.segment_id} points has {points.size} values, not a multiple of 3")
    clip = read_float32_field(msg.clip_embedding)
    return Segment(
        segment_id=int(msg.segment_id),
        mask=image_to_array(msg.mask) != 0,
        points=points.reshape(-1, 3),
        descriptor=read_float32_field(msg.descriptor),
        clip_embedding=clip if clip.size else None,
        label=msg.label,
        label_score=float(msg.label_score),
        score=float(msg.score),
    )


def _check_masks(segments: Iterable[Segment], shape: tuple) -> None:
    for segment in segments:
        if np.shape(segment.mask) != shape:
            raise ConversionError(
                f"segment {segment.segment_id} mask is {np.shape(segment.mask)} but the pointmap is {shape}"
            )


def keyframe_to_msg(
    keyframe: Keyframe,
    frame_id: str = "map",
    camera_frame_id: str = "camera",
    segments: Iterable[Segment] = (),
) -> KeyframeMsg:
    """A Keyframe message; ``segments`` fills its optional upstream-segment list (masks at pointmap size)."""
    segments = list(segments)
    _check_masks(segments, keyframe.pointmap.shape[:2])
    stamp = seconds_to_stamp(keyframe.stamp)
    H, W = keyframe.rgb.shape[:2]
    if (W, H) != (keyframe.intrinsics.width, keyframe.intrinsics.height):
        raise ConversionError(
            f"keyframe {keyframe.keyframe_id} rgb is {W}x{H} but intrinsics are "
            f"{keyframe.intrinsics.width}x{keyframe.intrinsics.height}"
        )
    features = keyframe.feature_map
    if features is None:
        dims, flat = (0, 0, 0), np.zeros(0, np.float32)
    else:
        features = np.asarray(features)
        if features.ndim != 3 or not np.issubdtype(features.dtype, np.floating):
            raise ConversionError(f"feature_map must be a (C, h, w) float array, got {features.shape} {features.dtype}")
        dims, flat = features.shape, features
    msg = new_message(
        KeyframeMsg,
        header=make_header(stamp, frame_id),
        keyframe_id=int(keyframe.keyframe_id),
        image=array_to_image(keyframe.rgb, "rgb8", stamp, camera_frame_id),
        camera_info=intrinsics_to_camera_info(keyframe.intrinsics, stamp, camera_frame_id),
        camera_pose=matrix_to_pose(keyframe.pose),
        pointmap=array_to_image(keyframe.pointmap, "32FC3", stamp, frame_id),
        confidence=array_to_image(keyframe.confidence, "32FC1", stamp, frame_id),
        metric_scale=bool(keyframe.metric_scale),
        feature_dim=int(dims[0]),
        feature_height=int(dims[1]),
        feature_width=int(dims[2]),
        segments=[segment_to_msg(segment, stamp, camera_frame_id) for segment in segments],
    )
    msg.feature_map = fill_float32_field(flat)  # no copy: see buffers.py
    return msg


def msg_to_keyframe(msg: KeyframeMsg) -> Keyframe:
    """A core Keyframe (its upstream segments are read separately with ``msgs_to_segments(msg.segments)``)."""
    rgb = image_to_rgb(msg.image)
    intrinsics = camera_info_to_intrinsics(msg.camera_info)
    if (intrinsics.width, intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
        raise ConversionError(
            f"keyframe {msg.keyframe_id} image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info is "
            f"{intrinsics.width}x{intrinsics.height}"
        )
    for name, image, encoding in (("pointmap", msg.pointmap, "32FC3"), ("confidence", msg.confidence, "32FC1")):
        if image.encoding != encoding:
            raise ConversionError(f"keyframe {msg.keyframe_id} {name} must be {encoding}, got {image.encoding!r}")
    pointmap, confidence = image_to_array(msg.pointmap), image_to_array(msg.confidence)
    if confidence.shape != pointmap.shape[:2]:
        raise ConversionError(
            f"keyframe {msg.keyframe_id} confidence is {confidence.shape} but the pointmap is {pointmap.shape[:2]}"
        )
    dims = (int(msg.feature_dim), int(msg.feature_height), int(msg.feature_width))
    flat = read_float32_field(msg.feature_map)
    if flat.size != int(np.prod(dims)):
        raise ConversionError(
            f"keyframe {msg.keyframe_id} feature_map has {flat.size} values but feature_dim * height * width = "
            f"{dims[0]} * {dims[1]} * {dims[2]}"
        )
    return Keyframe(
        keyframe_id=int(msg.keyframe_id),
        stamp=stamp_to_seconds(msg.header.stamp),
        rgb=rgb,
        intrinsics=intrinsics,
        pose=pose_to_matrix(msg.camera_pose),
        pointmap=pointmap,
        confidence=confidence,
        metric_scale=bool(msg.metric_scale),
        feature_map=flat.reshape(dims) if flat.size else None,
    )


def msgs_to_segments(msgs: Iterable[SegmentMsg]) -> list[Segment]:
    """Core Segments of a list of Segment messages."""
    return [msg_to_segment(msg) for msg in msgs]


def segmented_keyframe_to_msg(
    segmented: SegmentedKeyframe, frame_id: str = "map", camera_frame_id: str = "camera"
) -> SegmentedKeyframeMsg:
    """A SegmentedKeyframe message; the segments go to its own list, not the keyframe's upstream list."""
    keyframe = segmented.keyframe
    _check_masks(segmented.segments, keyframe.pointmap.shape[:2])
    stamp = seconds_to_stamp(keyframe.stamp)
    return SegmentedKeyframeMsg(
        keyframe=keyframe_to_msg(keyframe, frame_id, camera_frame_id),
        segments=[segment_to_msg(segment, stamp, camera_frame_id) for segment in segmented.segments],
        mask_source=str(segmented.mask_source),
    )


def msg_to_segmented_keyframe(msg: SegmentedKeyframeMsg) -> SegmentedKeyframe:
    """A core SegmentedKeyframe; every mask must match the keyframe's pointmap size."""
    keyframe = msg_to_keyframe(msg.keyframe)
    segments = msgs_to_segments(msg.segments)
    _check_masks(segments, keyframe.pointmap.shape[:2])
    return SegmentedKeyframe(keyframe=keyframe, segments=segments, mask_source=msg.mask_source)
