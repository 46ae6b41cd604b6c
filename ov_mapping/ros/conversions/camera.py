"""``sensor_msgs/CameraInfo`` <-> ``core.types.CameraIntrinsics`` (pinhole, no distortion).

Distortion policy: the pipeline assumes rectified images, so a CameraInfo with any non-zero distortion
coefficient raises ConversionError (subscribe to a rectified topic, e.g. image_proc's ``image_rect``). A caller
that knows the distortion is negligible passes ``ignore_distortion=True`` and the coefficients are dropped.
Binning and a region of interest other than the full image are refused for the same reason: they change the
effective intrinsics.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header


def camera_info_to_intrinsics(msg: CameraInfo, ignore_distortion: bool = False) -> CameraIntrinsics:
    """Pinhole intrinsics (K, width, height) of a CameraInfo; see the module docstring for the policy."""
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ConversionError(f"CameraInfo has no image size ({width}x{height}); is the camera calibrated?")
    K = np.asarray(msg.k, dtype=np.float64)
    if K.shape != (9,) or not np.isfinite(K).all():
        raise ConversionError(f"CameraInfo K must be 9 finite numbers, got {K.tolist()}")
    K = K.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"CameraInfo K must have positive focal lengths, got fx={K[0, 0]} fy={K[1, 1]} "
                              "(an all-zero K means an uncalibrated camera)")
    if K[0, 1] != 0 or K[1, 0] != 0 or not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise ConversionError(f"CameraInfo K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {K.tolist()}")
    distortion = np.asarray(msg.d, dtype=np.float64)
    if np.any(distortion != 0) and not ignore_distortion:
        raise ConversionError(
            f"CameraInfo has non-zero {msg.distortion_model or 'unnamed'} distortion {distortion.tolist()}; "
            "use rectified images, or pass ignore_distortion=True to drop it"
        )
    if msg.binning_x > 1 or msg.binning_y > 1:
        raise ConversionError(f"CameraInfo binning {msg.binning_x}x{msg.binning_y} is not supported")
    roi = msg.roi
    full_roi = roi.x_offset == 0 and roi.y_offset == 0 and roi.width in (0, width) and roi.height in (0, height)
    if not full_roi:
        raise ConversionError(f"CameraInfo region of interest {roi} is not supported (only the full image)")
    return CameraIntrinsics.from_matrix(K, width, height)


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, stamp: Stamp = 0.0, frame_id: str = "") -> CameraInfo:
    """A CameraInfo of an undistorted pinhole camera: plumb_bob with zero coefficients, R = I, P = [K | 0]."""
    if not isinstance(intrinsics, CameraIntrinsics):
        raise ConversionError(f"intrinsics must be a CameraIntrinsics, got {type(intrinsics).__name__}")
    K = intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(
        header=make_header(stamp, frame_id),
        width=intrinsics.width,
        height=intrinsics.height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
    )
