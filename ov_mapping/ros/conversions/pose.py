"""Pose, Transform and their stamped forms <-> 4x4 float64 matrices (quaternions as x, y, z, w)."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Transform, TransformStamped, Vector3

from ov_mapping.geometry.transforms import pose_from_quaternion, pose_to_quaternion
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header

# Quaternions in messages are meant to be unit; allow float32-level drift, refuse garbage such as all zeros.
_UNIT_TOLERANCE = 1e-3


def _to_matrix(translation, rotation, what: str) -> np.ndarray:
    t = np.array([translation.x, translation.y, translation.z], dtype=np.float64)
    q = np.array([rotation.x, rotation.y, rotation.z, rotation.w], dtype=np.float64)
    if not (np.isfinite(t).all() and np.isfinite(q).all()):
        raise ConversionError(f"{what} must be finite, got translation {t.tolist()} quaternion {q.tolist()}")
    if abs(np.linalg.norm(q) - 1.0) > _UNIT_TOLERANCE:
        raise ConversionError(f"{what} quaternion (x, y, z, w) = {q.tolist()} is not unit length")
    return pose_from_quaternion(t, q)


def _quaternion(q: np.ndarray) -> Quaternion:
    return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _split(matrix: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return pose_to_quaternion(np.asarray(matrix))
    except ValueError as error:
        raise ConversionError(f"{what} must be a rigid 4x4 transform: {error}") from error


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """(4, 4) float64 matrix of a Pose."""
    return _to_matrix(pose.position, pose.orientation, "pose")


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """A Pose of a rigid (4, 4) matrix (the quaternion has w >= 0)."""
    t, q = _split(matrix, "pose")
    return Pose(position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=_quaternion(q))


def transform_to_matrix(transform: Transform) -> np.ndarray:
    """(4, 4) float64 matrix of a Transform."""
    return _to_matrix(transform.translation, transform.rotation, "transform")


def matrix_to_transform(matrix: np.ndarray) -> Transform:
    """A Transform of a rigid (4, 4) matrix."""
    t, q = _split(matrix, "transform")
    return Transform(translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])), rotation=_quaternion(q))


def pose_stamped_to_matrix(msg: PoseStamped) -> np.ndarray:
    """(4, 4) float64 matrix of a PoseStamped (its header stays on the message)."""
    return pose_to_matrix(msg.pose)


def matrix_to_pose_stamped(matrix: np.ndarray, frame_id: str, stamp: Stamp = 0.0) -> PoseStamped:
    """A PoseStamped of a rigid (4, 4) matrix expressed in ``frame_id``."""
    return PoseStamped(header=make_header(stamp, frame_id), pose=matrix_to_pose(matrix))


def matrix_to_transform_stamped(
    matrix: np.ndarray, parent_frame: str, child_frame: str, stamp: Stamp = 0.0
) -> TransformStamped:
    """A TF TransformStamped: ``matrix`` is T_parent_child (maps child-frame points into the parent frame)."""
    return TransformStamped(
        header=make_header(stamp, parent_frame), child_frame_id=child_frame, transform=matrix_to_transform(matrix)
    )
