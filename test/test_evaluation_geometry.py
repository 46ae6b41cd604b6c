from pathlib import Path

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.evaluation.geometry import absolute_trajectory_error, map_consistency
from ov_mapping.geometry.camera import backproject_depth, transform_points
from ov_mapping.geometry.transforms import Similarity, pose_from_quaternion
from ov_mapping.mapping.voxel_map import VoxelMap

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "redkitchen_rgbd_a"
INTR = CameraIntrinsics(fx=60.0, fy=60.0, cx=31.5, cy=23.5, width=64, height=48)


def trajectory(n=30, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.stack([pose_from_quaternion(rng.uniform(-2, 2, 3), rng.normal(size=4)) for _ in range(n)])
    return poses


def test_ate_is_zero_after_similarity_alignment():
    truth = trajectory()
    warp = Similarity(0.5, pose_from_quaternion(np.zeros(3), [0.1, 0.4, -0.2, 0.9])[:3, :3], np.array([1.0, 2, 3]))
    estimated = truth.copy()
    estimated[:, :3, :3] = warp.rotation @ truth[:, :3, :3]
    estimated[:, :3, 3] = warp.apply(truth[:, :3, 3])
    sim3 = absolute_trajectory_error(estimated, truth, "sim3")
    assert sim3.rmse < 1e-9 and sim3.rotation_rmse_deg < 1e-6
    assert sim3.alignment.scale == pytest.approx(2.0)
    assert absolute_trajectory_error(estimated, truth, "se3").rmse > 0.1  # scale cannot be undone
    assert absolute_trajectory_error(estimated, truth, "none").rmse > 1.0


def test_ate_measures_known_offsets():
    truth = trajectory()
    estimated = truth.copy()
    estimated[::2, 0, 3] += 0.1
    estimated[1::2, 0, 3] -= 0.1
    result = absolute_trajectory_error(estimated, truth, "none")
    assert result.rmse == pytest.approx(0.1) and result.max == pytest.approx(0.1)
    with pytest.raises(ValueError, match="shape"):
        absolute_trajectory_error(estimated[:5], truth, "se3")
    with pytest.raises(ValueError, match="alignment"):
        absolute_trajectory_error(estimated, truth, "affine")


def test_consistency_of_a_plane_seen_twice():
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    pose = np.eye(4)
    points = backproject_depth(depth, INTR).reshape(-1, 3)
    vmap = VoxelMap(0.02)
    vmap.integrate(points, np.zeros(points.shape, np.uint8))
    assert map_consistency(vmap, depth, INTR, pose, k_voxels=2).fraction == 1.0
    shifted = pose.copy()
    shifted[2, 3] = 0.2  # the same view 20 cm further: nothing within 4 cm
    result = map_consistency(vmap, depth, INTR, shifted, k_voxels=2)
    assert result.fraction == 0.0 and result.num_points == 48 * 64
    half = depth.copy()
    half[:, 32:] = 2.2  # half of the view moved behind the mapped plane
    assert map_consistency(vmap, half, INTR, pose).fraction == pytest.approx(0.5)
    with pytest.raises(ValueError, match="valid depth"):
        map_consistency(vmap, np.zeros_like(depth), INTR, pose)


@pytest.mark.skipif(not DATA.is_dir(), reason="shared redkitchen data absent")
def test_redkitchen_held_out_frames_lie_on_the_map():
    from PIL import Image

    intrinsics = CameraIntrinsics.from_matrix(np.loadtxt(DATA / "camera-intrinsics.txt"), 640, 480)
    ids = sorted(int(p.name[6:12]) for p in (DATA / "frames").glob("frame-*.pose.txt"))
    vmap = VoxelMap(0.02)
    held_out = []
    for n, i in enumerate(ids):
        stem = DATA / "frames" / f"frame-{i:06d}"
        depth = np.array(Image.open(f"{stem}.depth.png"))
        pose = np.loadtxt(f"{stem}.pose.txt")
        if n % 10 == 5:  # every 10th frame is held out
            held_out.append((depth, pose))
            continue
        rgb = np.array(Image.open(f"{stem}.color.jpg").convert("RGB"))[::2, ::2]
        camera = backproject_depth(depth, intrinsics, stride=2)
        valid = np.isfinite(camera[..., 2])
        vmap.integrate(transform_points(pose, camera[valid]), rgb[valid])
    fractions = [map_consistency(vmap, d, intrinsics, T, k_voxels=2, stride=4).fraction for d, T in held_out]
    print(f"redkitchen consistency: {len(held_out)} held-out frames, mean {np.mean(fractions):.4f}, "
          f"min {np.min(fractions):.4f}, {len(vmap)} voxels")
    assert len(held_out) == 12
    assert min(fractions) >= 0.90
