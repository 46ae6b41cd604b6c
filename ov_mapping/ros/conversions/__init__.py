"""Conversions between ROS messages and numpy / core types: the one place where the two meet.

Pure numpy (no cv_bridge, no sensor_msgs_py); one module per message family. Every function raises
``ConversionError`` (a ValueError) with a message naming the bad field when its input cannot be converted.
"""

from ov_mapping.ros.conversions.camera import camera_info_to_intrinsics, intrinsics_to_camera_info
from ov_mapping.ros.conversions.compressed import (
    array_to_compressed,
    compressed_to_array,
    compressed_to_depth_m,
    compressed_to_rgb,
)
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import make_header, seconds_to_stamp, stamp_to_seconds
from ov_mapping.ros.conversions.image import (
    ENCODINGS,
    array_to_image,
    depth_m_to_image,
    image_to_array,
    image_to_depth_m,
    image_to_rgb,
)
from ov_mapping.ros.conversions.instance import instance_to_msg, instances_to_msg, msg_to_instance, msg_to_instances
from ov_mapping.ros.conversions.markers import instance_colour, instances_to_markers
from ov_mapping.ros.conversions.keyframe import (
    keyframe_to_msg,
    msg_to_keyframe,
    msg_to_segment,
    msg_to_segmented_keyframe,
    msgs_to_segments,
    segment_to_msg,
    segmented_keyframe_to_msg,
)
from ov_mapping.ros.conversions.pointcloud import (
    array_to_pointcloud,
    decode_pointcloud,
    decode_xyzrgb,
    encode_pointcloud,
    encode_xyzrgb,
    pack_rgb,
    pointcloud_dtype,
    pointcloud_to_array,
    unpack_rgb,
)
from ov_mapping.ros.conversions.pose import (
    matrix_to_pose,
    matrix_to_pose_stamped,
    matrix_to_transform,
    matrix_to_transform_stamped,
    pose_stamped_to_matrix,
    pose_to_matrix,
    transform_to_matrix,
)

__all__ = [
    "instance_colour",
    "instances_to_markers",
    "ConversionError",
    "ENCODINGS",
    "array_to_compressed",
    "array_to_image",
    "array_to_pointcloud",
    "camera_info_to_intrinsics",
    "compressed_to_array",
    "compressed_to_depth_m",
    "compressed_to_rgb",
    "decode_pointcloud",
    "decode_xyzrgb",
    "depth_m_to_image",
    "encode_pointcloud",
    "encode_xyzrgb",
    "image_to_array",
    "image_to_depth_m",
    "image_to_rgb",
    "instance_to_msg",
    "instances_to_msg",
    "intrinsics_to_camera_info",
    "keyframe_to_msg",
    "make_header",
    "matrix_to_pose",
    "matrix_to_pose_stamped",
    "matrix_to_transform",
    "matrix_to_transform_stamped",
    "msg_to_instance",
    "msg_to_instances",
    "msg_to_keyframe",
    "msg_to_segment",
    "msg_to_segmented_keyframe",
    "msgs_to_segments",
    "pack_rgb",
    "pointcloud_dtype",
    "pointcloud_to_array",
    "pose_stamped_to_matrix",
    "pose_to_matrix",
    "seconds_to_stamp",
    "segment_to_msg",
    "segmented_keyframe_to_msg",
    "stamp_to_seconds",
    "transform_to_matrix",
    "unpack_rgb",
]
