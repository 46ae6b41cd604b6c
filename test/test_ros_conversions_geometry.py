"""CameraInfo <-> CameraIntrinsics, Pose/Transform <-> 4x4 matrices, Time <-> float seconds."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, Quaternion, Transform
from sensor_msgs.msg import RegionOfInterest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.transforms import quaternion_to_matrix
from ov_mapping.ros.conversions import (
    ConversionError,
    camera_info_to_intrinsics,
    intrinsics_to_camera_info,
    make_header,
    matrix_to_pose,
    matrix_to_pose_stamped,
    matrix_to_transform,
    matrix_to_transform_stamped,
    pose_stamped_to_matrix,
    pose_to_matrix,
    seconds_to_stamp,
    stamp_to_seconds,
    transform_to_matrix,
)

INTRINSICS = CameraIntrinsics(fx=525.0, fy=520.5, cx=319.5, cy=239.25, width=640, height=480)


def random_poses(count, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3, :3] = quaternion_to_matrix(rng.normal(size=(count, 4)))
    poses[:, :3, 3] = rng.normal(scale=5.0, size=(count, 3))
    return poses


# CameraInfo


def test_camera_info_round_trip():
    msg = intrinsics_to_camera_info(INTRINSICS, stamp=2.0, frame_id="cam_optical")
    assert (msg.width, msg.height, msg.header.frame_id) == (640, 480, "cam_optical")
    np.testing.assert_array_equal(msg.k, [525.0, 0, 319.5, 0, 520.5, 239.25, 0, 0, 1])
    np.testing.assert_array_equal(msg.p, [525.0, 0, 319.5, 0, 0, 520.5, 239.25, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(msg.r, np.eye(3).reshape(-1))
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    assert camera_info_to_intrinsics(msg) == INTRINSICS


def test_camera_info_without_distortion_coefficients():
    msg = intrinsics_to_camera_info(INTRINSICS)
    msg.d = []
    msg.distortion_model = ""
    assert camera_info_to_intrinsics(msg) == INTRINSICS


def test_distortion_is_refused_unless_ignored():
    msg = intrinsics_to_camera_info(INTRINSICS)
    msg.d = [0.1, -0.02, 0.0, 0.0, 0.0]
    with pytest.raises(ConversionError, match="non-zero plumb_bob distortion .* ignore_distortion=True"):
        camera_info_to_intrinsics(msg)
    assert camera_info_to_intrinsics(msg, ignore_distortion=True) == INTRINSICS


def edited(**changes):
    msg = intrinsics_to_camera_info(INTRINSICS)
    k = msg.k.copy()
    for key, value in changes.items():
        if key.startswith("k"):
            k[int(key[1:])] = value
        else:
            setattr(msg, key, value)
    msg.k = k
    return msg


@pytest.mark.parametrize(
    "msg, message",
    [
        (edited(k0=0.0, k4=0.0), "positive focal lengths"),
        (edited(k4=-3.0), "positive focal lengths"),
        (edited(k2=float("nan")), "9 finite numbers"),
        (edited(k1=1.5), "no skew"),
        (edited(k8=2.0), "no skew"),
        (edited(width=0), "no image size"),
        (edited(binning_x=2), "binning 2x0"),
        (edited(roi=RegionOfInterest(x_offset=10, y_offset=0, width=100, height=100)), "region of interest"),
    ],
)
def test_bad_camera_info(msg, message):
    with pytest.raises(ConversionError, match=message):
        camera_info_to_intrinsics(msg)


def test_full_image_roi_is_accepted():
    msg = edited(roi=RegionOfInterest(x_offset=0, y_offset=0, width=640, height=480))
    assert camera_info_to_intrinsics(msg) == INTRINSICS


def test_intrinsics_type_is_checked():
    with pytest.raises(ConversionError, match="CameraIntrinsics"):
        intrinsics_to_camera_info(np.eye(3))


# Poses


def test_quaternion_hand_value():
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = [1.0, 2.0, 3.0]
    pose = matrix_to_pose(matrix)
    q = pose.orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)
    assert (pose.position.x, pose.position.y, pose.position.z) == (1.0, 2.0, 3.0)
    half_turn_x = Pose(orientation=Quaternion(x=1.0, y=0.0, z=0.0, w=0.0))
    np.testing.assert_allclose(pose_to_matrix(half_turn_x)[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-15)


def test_pose_round_trip():
    for matrix in random_poses(50):
        np.testing.assert_allclose(pose_to_matrix(matrix_to_pose(matrix)), matrix, atol=1e-12)


def test_transform_round_trip():
    for matrix in random_poses(50, seed=1):
        np.testing.assert_allclose(transform_to_matrix(matrix_to_transform(matrix)), matrix, atol=1e-12)


def test_stamped_forms():
    matrix = random_poses(1, seed=2)[0]
    stamped = matrix_to_pose_stamped(matrix, "map", stamp=4.25)
    assert stamped.header.frame_id == "map" and stamped.header.stamp.nanosec == 250_000_000
    np.testing.assert_allclose(pose_stamped_to_matrix(stamped), matrix, atol=1e-12)
    tf = matrix_to_transform_stamped(matrix, "map", "camera", stamp=Time(sec=7, nanosec=3))
    assert (tf.header.frame_id, tf.child_frame_id) == ("map", "camera")
    assert (tf.header.stamp.sec, tf.header.stamp.nanosec) == (7, 3)
    np.testing.assert_allclose(transform_to_matrix(tf.transform), matrix, atol=1e-12)


def test_pose_to_matrix_tolerates_float32_quaternion():
    q = np.array([0.1, 0.2, 0.3, 0.9], np.float32)
    q /= np.linalg.norm(q)
    pose = Pose(orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
    rotation = pose_to_matrix(pose)[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "quaternion, message",
    [((0.0, 0.0, 0.0, 0.0), "not unit length"), ((0.0, 0.0, 0.0, 2.0), "not unit length"),
     ((float("nan"), 0.0, 0.0, 1.0), "must be finite")],
)
def test_bad_quaternion(quaternion, message):
    x, y, z, w = quaternion
    with pytest.raises(ConversionError, match=message):
        pose_to_matrix(Pose(orientation=Quaternion(x=x, y=y, z=z, w=w)))
    with pytest.raises(ConversionError, match=message):
        transform_to_matrix(Transform(rotation=Quaternion(x=x, y=y, z=z, w=w)))


@pytest.mark.parametrize(
    "matrix",
    [np.diag([2.0, 2.0, 2.0, 1.0]), np.eye(3), np.full((4, 4), np.nan), np.diag([1.0, 1.0, -1.0, 1.0])],
)
def test_non_rigid_matrix_is_refused(matrix):
    with pytest.raises(ConversionError, match="rigid 4x4"):
        matrix_to_pose(matrix)


# Stamps


def test_stamp_hand_values():
    stamp = seconds_to_stamp(1.5)
    assert (stamp.sec, stamp.nanosec) == (1, 500_000_000)
    assert stamp_to_seconds(Time(sec=3, nanosec=250_000_000)) == 3.25
    carried = seconds_to_stamp(4.9999999999)
    assert (carried.sec, carried.nanosec) == (5, 0)


def test_epoch_stamp_round_trip_is_exact():
    for seconds in (1_700_000_000.123456789, 1_699_999_999.999999, 0.0, 12.000000001):
        assert stamp_to_seconds(seconds_to_stamp(seconds)) == seconds
    stamp = Time(sec=1_700_000_000, nanosec=123_456_768)
    back = seconds_to_stamp(stamp_to_seconds(stamp))
    assert back.sec == stamp.sec and abs(back.nanosec - stamp.nanosec) <= 120  # float64 spacing here is 238 ns


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf"), 2.0**31])
def test_bad_stamp(seconds):
    with pytest.raises(ConversionError, match="stamp must be finite seconds"):
        seconds_to_stamp(seconds)


def test_make_header_copies_time():
    stamp = Time(sec=1, nanosec=2)
    header = make_header(stamp, "map")
    stamp.sec = 99
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1, 2, "map")


def test_instances_become_a_box_and_a_label_marker_each_after_a_delete_all():
    from visualization_msgs.msg import Marker

    from ov_mapping.ros.conversions import instances_to_markers

    records = [{"instance_id": 7, "centroid": [1.0, 2.0, 0.5], "box_center": [1.0, 2.0, 0.5],
                "box_size": [0.4, 0.6, 1.0], "label": "chair", "label_score": 0.8},
               {"instance_id": 9, "centroid": [0, 0, 0], "box_center": [0, 0, 0], "box_size": [0, 0, 0]}]
    markers = instances_to_markers(records, "map").markers
    assert markers[0].action == Marker.DELETEALL and len(markers) == 5
    box, text = markers[1], markers[2]
    assert box.type == Marker.CUBE and (box.scale.x, box.scale.y, box.scale.z) == pytest.approx((0.4, 0.6, 1.0))
    assert text.text == "chair (0.80)" and text.pose.position.z == pytest.approx(0.5 + 0.5 + 0.12)
    assert markers[3].scale.x > 0  # a degenerate box still renders
    assert markers[4].text == "instance 9"
    with pytest.raises(ValueError):
        instances_to_markers([{"instance_id": 1}], "map")
