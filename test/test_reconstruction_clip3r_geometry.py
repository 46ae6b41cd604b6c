"""Pose recovery from local / world pointmap pairs on a synthetic room with ground truth (1 mm, 0.1 degree)."""

from __future__ import annotations

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.camera import backproject_depth, pointmap_to_world
from ov_mapping.geometry.transforms import invert_pose, rotation_angle
from ov_mapping.reconstruction.clip3r_geometry import recover_pose, world_scale

pytest.importorskip("open3d", reason="the synthetic room is rendered with open3d")
from ov_mapping.datasets.synthetic import SyntheticSequence  # noqa: E402

MODEL_K = CameraIntrinsics(182.0, 182.0, 111.5, 111.5, 224, 224)


@pytest.fixture(scope="module")
def room():
    """(poses (N, 4, 4), camera-frame pointmaps (N, 224, 224, 3)) of 6 frames around the synthetic room."""
    seq = SyntheticSequence(num_frames=30, width=224, height=224, seed=3)
    picks = [0, 4, 9, 15, 21, 27]
    cams = np.stack([backproject_depth(seq[i].depth, MODEL_K) for i in picks])
    return seq.poses[picks], cams


def corrupt(points: np.ndarray, rng: np.random.Generator, sigma: float, outliers: float, jump: float) -> np.ndarray:
    """Gaussian noise on every point, and a random fraction thrown far away (wrong but confident points)."""
    out = points + rng.normal(0.0, sigma, points.shape).astype(np.float32)
    wild = rng.random(points.shape[:2]) < outliers
    out[wild] += rng.normal(0.0, jump, (int(wild.sum()), 3)).astype(np.float32)
    return out


def test_recover_pose_finds_the_ground_truth_trajectory(room):
    poses, cams = room
    rng = np.random.default_rng(0)
    world_from_gt = np.eye(4)  # the stream's world: a similarity of the ground-truth one
    world_from_gt[:3, :3] = 0.4 * np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    world_from_gt[:3, 3] = [0.3, -1.2, 0.5]
    for k, (pose, cam) in enumerate(zip(poses, cams)):
        local_scale = 0.5 + 0.3 * k  # every I2P window has its own arbitrary scale
        local = corrupt(cam * np.float32(local_scale), rng, 0.001 * local_scale, 0.2, 0.5 * local_scale)
        world = corrupt(pointmap_to_world(cam, world_from_gt @ pose), rng, 0.0004, 0.1, 0.2)
        conf = rng.uniform(2.0, 20.0, cam.shape[:2])
        fit = recover_pose(local, world, weights=conf, seed=k)

        # expected: world = s_w R_w (pose applied to camera points) + t_w with the world similarity
        s_w = 0.4
        R_w = world_from_gt[:3, :3] / s_w
        expected_R = R_w @ pose[:3, :3]
        expected_t = s_w * R_w @ pose[:3, 3] + world_from_gt[:3, 3]
        angle = np.degrees(rotation_angle(fit.T_world_camera[:3, :3].T @ expected_R))
        metres = np.linalg.norm(fit.T_world_camera[:3, 3] - expected_t) / s_w  # back to metric units
        assert angle < 0.1, f"frame {k}: rotation off by {angle:.4f} deg"
        assert metres < 1e-3, f"frame {k}: position off by {metres * 1000:.3f} mm"
        assert fit.scale == pytest.approx(s_w / local_scale, rel=1e-3)
        assert fit.num_points == 8192


def test_recover_pose_ignores_invalid_pixels_and_uses_the_mask(room):
    poses, cams = room
    cam = cams[1]
    world = pointmap_to_world(cam, poses[1])
    local = cam.copy()
    local[:50] = np.nan  # dropped pixels of the network output
    valid = np.ones(cam.shape[:2], dtype=bool)
    world_bad = world.copy()
    world_bad[100:] += 5.0  # bad everywhere the mask excludes
    valid[100:] = False
    fit = recover_pose(local, world_bad, valid=valid, max_points=20000)
    assert np.linalg.norm(fit.T_world_camera[:3, 3] - poses[1][:3, 3]) < 1e-4
    assert fit.num_points == 50 * 224
    assert np.degrees(rotation_angle(invert_pose(fit.T_world_camera)[:3, :3] @ poses[1][:3, :3])) < 1e-3


def test_world_scale_makes_confident_points_unit_distance():
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 3.0, (2, 10, 10, 3)).astype(np.float32)
    conf = np.where(rng.random((2, 10, 10)) < 0.5, 3.0, 1.0)
    k = world_scale(pts, conf, 1.5)
    assert np.linalg.norm(pts[conf > 1.5] * k, axis=-1).mean() == pytest.approx(1.0)
    # no confident point at all: every finite point counts
    k_all = world_scale(pts, np.ones((2, 10, 10)), 1.5)
    assert np.linalg.norm(pts * k_all, axis=-1).mean() == pytest.approx(1.0, rel=1e-6)


def test_recover_pose_rejects_bad_input():
    good = np.random.default_rng(2).normal(size=(8, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="one shape"):
        recover_pose(good, good[:4])
    with pytest.raises(ValueError, match="float pointmap"):
        recover_pose(good.astype(np.int64), good)
    with pytest.raises(ValueError, match="weights must have shape"):
        recover_pose(good, good, weights=np.ones(3))
    with pytest.raises(ValueError, match="only 0 pixels"):
        recover_pose(np.full_like(good, np.nan), good)
    with pytest.raises(ValueError, match="no finite point"):
        world_scale(np.zeros((1, 4, 4, 3)), np.ones((1, 4, 4)), 1.5)
