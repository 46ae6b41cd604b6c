import math
from pathlib import Path

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame
from ov_mapping.evaluation.geometry import absolute_trajectory_error
from ov_mapping.geometry.transforms import pose_from_quaternion
from ov_mapping.reconstruction.keyframes import KeyframeSelector
from ov_mapping.reconstruction.rgbd import OdometryConfig, RGBDOdometry, frame_to_keyframe

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "redkitchen_rgbd_a"
INTR = CameraIntrinsics(fx=50.0, fy=50.0, cx=15.5, cy=11.5, width=32, height=24)


def load_redkitchen(step=1):
    """(rgb, raw uint16 depth, pose) per frame, every ``step``-th frame, with the shared intrinsics."""
    from PIL import Image

    K = np.loadtxt(DATA / "camera-intrinsics.txt")
    intrinsics = CameraIntrinsics.from_matrix(K, 640, 480)
    ids = sorted(int(p.name[6:12]) for p in (DATA / "frames").glob("frame-*.pose.txt"))[::step]
    frames = []
    for i in ids:
        stem = DATA / "frames" / f"frame-{i:06d}"
        rgb = np.array(Image.open(f"{stem}.color.jpg").convert("RGB"))
        depth = np.array(Image.open(f"{stem}.depth.png"))
        frames.append(RGBDFrame(i / 30.0, rgb, intrinsics, depth=depth, pose=np.loadtxt(f"{stem}.pose.txt")))
    return frames


def moved(x=0.0, yaw_deg=0.0):
    half = math.radians(yaw_deg) / 2
    return pose_from_quaternion([x, 0.0, 0.0], [0.0, 0.0, math.sin(half), math.cos(half)])


def test_keyframe_selector_translation_rotation_time_and_replay():
    selector = KeyframeSelector(min_translation=0.1, min_rotation_deg=10, max_interval=2.0, min_interval=0.1)
    assert selector.select(0.0, moved())
    assert not selector.select(0.05, moved(x=0.5))  # within min_interval
    assert not selector.select(0.5, moved(x=0.05))
    assert selector.select(0.6, moved(x=0.15))  # translation
    assert selector.select(0.8, moved(x=0.15, yaw_deg=12))  # rotation
    assert not selector.select(1.0, moved(x=0.15, yaw_deg=12))
    assert selector.select(2.9, moved(x=0.15, yaw_deg=12))  # time
    assert selector.select(1.0, moved())  # time went backwards: start over
    assert not selector.select(1.5)  # no pose: only time rules
    assert selector.select(3.0)


@pytest.mark.parametrize(
    "kwargs", [{"min_translation": -1}, {"min_rotation_deg": float("nan")}, {"min_interval": 3, "max_interval": 2}]
)
def test_keyframe_selector_validates(kwargs):
    with pytest.raises(ValueError):
        KeyframeSelector(**kwargs)


def test_frame_to_keyframe_world_pointmap_and_confidence():
    depth = np.full((24, 32), 2.0, dtype=np.float32)
    depth[0, 0] = 0.0
    pose = moved(x=1.0)
    frame = RGBDFrame(1.5, np.zeros((24, 32, 3), np.uint8), INTR, depth=depth, pose=pose)
    keyframe = frame_to_keyframe(frame, None, keyframe_id=7, stride=2)
    assert keyframe.keyframe_id == 7 and keyframe.stamp == 1.5 and keyframe.metric_scale
    assert keyframe.pointmap.shape == (12, 16, 3) and keyframe.pointmap.dtype == np.float32
    assert np.isnan(keyframe.pointmap[0, 0]).all() and keyframe.confidence[0, 0] == 0
    assert (keyframe.confidence[1:] == 1).all()
    expected_x = 1.0 + (np.arange(0, 32, 2) - 15.5) / 50 * 2  # camera x plus the pose's 1 m shift
    np.testing.assert_allclose(keyframe.pointmap[5, :, 0], expected_x, atol=1e-6)
    weighted = frame_to_keyframe(frame, pose, 8, stride=2, depth_weighted=True)
    np.testing.assert_allclose(weighted.confidence[1:], 0.25)
    points, colours = keyframe.valid_points()
    assert len(points) == 12 * 16 - 1 and colours.dtype == np.uint8
    with pytest.raises(ValueError, match="pose"):
        frame_to_keyframe(RGBDFrame(0.0, frame.rgb, INTR, depth=depth), None, 0)
    with pytest.raises(ValueError, match="depth"):
        frame_to_keyframe(RGBDFrame(0.0, frame.rgb, INTR, pose=pose), None, 0)


def test_odometry_config_validation():
    for bad in ({"mode": "tsdf"}, {"max_depth": 0.05}, {"image_stride": 0}, {"iterations": ()}, {"min_overlap": 2}):
        with pytest.raises(ValueError):
            OdometryConfig(**bad)
    pytest.importorskip("open3d")
    with pytest.raises(ValueError, match="unknown"):
        RGBDOdometry(max_dept=3.0)
    with pytest.raises(ValueError, match="max_depth"):
        RGBDOdometry(max_depth=-1.0)


def test_odometry_failure_path_returns_none_with_reason():
    pytest.importorskip("open3d")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    intr = INTR.scaled(64, 48)
    depth = np.full((48, 64), 1.5, dtype=np.float32)
    odometry = RGBDOdometry(image_stride=1)
    first = odometry.track(RGBDFrame(0.0, rgb, intr, depth=depth))
    assert first.reason == "initialised" and np.allclose(first.pose, np.eye(4))
    lost = odometry.track(RGBDFrame(0.1, rgb, intr, depth=np.zeros_like(depth)))  # no depth at all
    assert lost.pose is None and lost.reason and lost.reason != "tracked"
    again = odometry.track(RGBDFrame(0.2, rgb, intr, depth=depth))  # the same view: back on track
    assert again.pose is not None
    np.testing.assert_allclose(again.pose, np.eye(4), atol=1e-3)


@pytest.fixture(scope="module")
def redkitchen():
    if not DATA.is_dir():
        pytest.skip("shared redkitchen data absent")
    return load_redkitchen()


@pytest.mark.parametrize("mode", ["frame", "keyframe"])
def test_odometry_on_redkitchen_tracks_within_ten_centimetres(redkitchen, mode):
    pytest.importorskip("open3d")
    frames = redkitchen
    odometry = RGBDOdometry(OdometryConfig(mode=mode), initial_pose=frames[0].pose, image_stride=4)
    estimated, truth, references = [], [], 0
    for frame in frames:
        result = odometry.track(frame)
        references += result.is_reference
        if result.pose is not None:
            estimated.append(result.pose)
            truth.append(frame.pose)
    if mode == "frame":
        assert references == len(estimated)
    else:
        assert 1 < references < len(estimated)  # the reference is kept over several frames
    assert len(estimated) >= 0.95 * len(frames)
    path_length = np.linalg.norm(np.diff(np.array(truth)[:, :3, 3], axis=0), axis=1).sum()
    raw = absolute_trajectory_error(np.array(estimated), np.array(truth), alignment="none")
    aligned = absolute_trajectory_error(np.array(estimated), np.array(truth), alignment="se3")
    print(f"redkitchen odometry ({mode}): path {path_length:.2f} m, ATE raw {raw.rmse:.4f} m, "
          f"se3 {aligned.rmse:.4f} m, "
          f"rot {aligned.rotation_rmse_deg:.2f} deg, {len(estimated)}/{len(frames)} tracked")
    # Measured: 0.11-0.12 m raw and 0.06 m aligned over a 3.75 m path. The bounds leave room for
    # platform differences: dense odometry drifts, and the reference poses are themselves tracked.
    assert aligned.rmse < 0.10
    assert raw.rmse < 0.20
