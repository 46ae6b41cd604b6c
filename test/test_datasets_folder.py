"""Folder readers (7-Scenes, TUM), pose helpers and open_sequence, on folders written here and on shared data."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.datasets import Sequence, SevenScenesSequence, TumSequence, open_sequence
from ov_mapping.datasets.poses import interpolate_trajectory
from ov_mapping.geometry.transforms import matrix_to_quaternion, quaternion_to_matrix

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
K = np.array([[100.0, 0, 15.5], [0, 110.0, 11.5], [0, 0, 1]])
W, H = 32, 24


def random_rotation(rng):
    q = rng.normal(size=4)
    return quaternion_to_matrix(q)


def write_seven_scenes(root: Path, numbers=(0, 4, 8), rng=None):
    rng = rng or np.random.default_rng(0)
    frames = root / "frames"
    frames.mkdir(parents=True)
    np.savetxt(root / "camera-intrinsics.txt", K)
    truth = []
    for n in numbers:
        rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
        depth_mm = rng.integers(500, 4000, size=(H, W)).astype(np.uint16)
        depth_mm[0, 0] = 0
        depth_mm[0, 1] = 65535
        pose = np.eye(4)
        pose[:3, :3] = random_rotation(rng)
        pose[:3, 3] = rng.normal(size=3)
        Image.fromarray(rgb).save(frames / f"frame-{n:06d}.color.png")
        Image.fromarray(depth_mm).save(frames / f"frame-{n:06d}.depth.png")
        np.savetxt(frames / f"frame-{n:06d}.pose.txt", pose)
        truth.append((rgb, depth_mm, pose))
    return truth


def write_tum(root: Path, stamps=(10.0, 10.5, 11.0, 11.5), rng=None):
    rng = rng or np.random.default_rng(1)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "intrinsics.txt").write_text("# test camera\nfx 100\nfy 110\ncx 15.5\ncy 11.5\nwidth 32\nheight 24\n")
    rgbs = []
    for s in stamps:
        rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "rgb" / f"{s:.6f}.png")
        rgbs.append(rgb)
    # depth for the second frame only, 5 ms late
    depth = rng.integers(2500, 20000, size=(H, W)).astype(np.uint16)
    Image.fromarray(depth).save(root / "depth" / f"{stamps[1] + 0.005:.6f}.png")
    # trajectory at 100 Hz from 10.2 s: the first frame has no pose
    t = np.arange(10.2, 11.8, 0.01)
    lines = ["# t tx ty tz qx qy qz qw"] + [f"{s:.4f} {s:.4f} 0 1 0 0 0 1" for s in t]
    (root / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return rgbs, depth


# ---------------------------------------------------------------- poses

def test_quaternion_round_trip_and_known_rotation():
    rng = np.random.default_rng(2)
    for _ in range(20):
        R = random_rotation(rng)
        assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)
    # 90 degrees about z
    R = quaternion_to_matrix(np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]))
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="non-zero"):
        quaternion_to_matrix(np.zeros(4))


def test_interpolation_midpoint_exact_sample_and_holes():
    q0 = np.array([0, 0, 0, 1.0])
    q1 = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])  # 90 deg about z
    stamps = np.array([0.0, 1.0, 5.0])
    poses = interpolate_trajectory(stamps, np.array([[0, 0, 0], [2, 0, 0], [9, 9, 9]]), np.stack([q0, q1, q1]),
                                   np.array([0.5, 1.0, 3.0, -1.0, 5.2]), max_gap=1.5)
    mid = poses[0]
    assert np.allclose(mid[:3, 3], [1, 0, 0])
    assert np.allclose(mid[:3, :3], quaternion_to_matrix(np.array([0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)])))
    assert np.allclose(poses[1][:3, 3], [2, 0, 0])
    assert poses[2] is None and poses[3] is None  # in a 4 s hole; before the start
    assert poses[4] is not None and np.allclose(poses[4][:3, 3], [9, 9, 9])  # 0.2 s past the end, within gap/2


# ---------------------------------------------------------------- 7-Scenes

def test_seven_scenes_reader_on_written_folder(tmp_path):
    truth = write_seven_scenes(tmp_path / "kitchen")
    seq = SevenScenesSequence(tmp_path / "kitchen")
    assert isinstance(seq, Sequence)
    assert len(seq) == 3 and seq.name == "kitchen"
    assert seq.fps == pytest.approx(7.5)  # 30 Hz / stride 4
    assert np.allclose(seq.stamps, [0, 1 / 7.5, 2 / 7.5])
    assert np.allclose(seq.intrinsics.K, K) and (seq.intrinsics.width, seq.intrinsics.height) == (W, H)
    for frame, (rgb, depth_mm, pose) in zip(seq, truth):
        assert np.array_equal(frame.rgb, rgb)
        assert frame.depth.dtype == np.float32
        assert np.allclose(frame.depth[1:], depth_mm[1:] / 1000.0)
        assert frame.depth[0, 0] == 0 and frame.depth[0, 1] == 0  # 0 and 65535 are both invalid
        assert np.allclose(frame.pose, pose)
    assert seq[-1].stamp == pytest.approx(2 / 7.5)
    assert seq.ground_truth(0) is None and seq.metadata is None
    with pytest.raises(IndexError):
        seq[3]
    assert SevenScenesSequence(tmp_path / "kitchen", fps=30).stamps[1] == pytest.approx(1 / 30)


def test_seven_scenes_invalid_pose_and_missing_depth(tmp_path):
    write_seven_scenes(tmp_path / "s")
    frames = tmp_path / "s" / "frames"
    np.savetxt(frames / "frame-000004.pose.txt", np.full((4, 4), -np.inf))
    (frames / "frame-000008.depth.png").unlink()
    seq = open_sequence(tmp_path / "s")
    assert isinstance(seq, SevenScenesSequence)
    assert seq[1].pose is None
    assert seq[2].depth is None and seq[2].pose is not None


def test_seven_scenes_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SevenScenesSequence(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame-NNNNNN"):
        SevenScenesSequence(tmp_path / "empty")
    write_seven_scenes(tmp_path / "noK")
    (tmp_path / "noK" / "camera-intrinsics.txt").unlink()
    with pytest.raises(FileNotFoundError, match="intrinsics"):
        SevenScenesSequence(tmp_path / "noK")
    seq = SevenScenesSequence(tmp_path / "noK", intrinsics=CameraIntrinsics.from_matrix(K, W, H))
    assert seq[0].rgb.shape == (H, W, 3)
    with pytest.raises(ValueError, match="32x24"):
        SevenScenesSequence(tmp_path / "noK", intrinsics=CameraIntrinsics.from_matrix(K, 64, 48))
    # a depth image of the wrong size, an unreadable colour image, a malformed pose
    write_seven_scenes(tmp_path / "bad")
    frames = tmp_path / "bad" / "frames"
    Image.fromarray(np.zeros((10, 10), np.uint16)).save(frames / "frame-000000.depth.png")
    (frames / "frame-000004.color.png").write_bytes(b"not an image")
    (frames / "frame-000008.pose.txt").write_text("1 2 3\n")
    seq = SevenScenesSequence(tmp_path / "bad")
    with pytest.raises(ValueError, match="depth image .* is 10x10 but the sequence is 32x24"):
        seq[0]
    with pytest.raises(ValueError, match="cannot read colour image"):
        seq[1]
    with pytest.raises(ValueError, match="4x4 matrix"):
        seq[2]


# ---------------------------------------------------------------- TUM

def test_tum_reader_on_written_folder(tmp_path):
    rgbs, depth = write_tum(tmp_path / "office")
    seq = TumSequence(tmp_path / "office")
    assert len(seq) == 4 and seq.fps == pytest.approx(2.0)
    assert np.allclose(seq.stamps, [10.0, 10.5, 11.0, 11.5])
    assert seq.intrinsics == CameraIntrinsics(100, 110, 15.5, 11.5, W, H)
    frames = list(seq)
    assert all(np.array_equal(f.rgb, r) for f, r in zip(frames, rgbs))
    assert frames[0].pose is None  # before the trajectory
    for f in frames[1:]:
        assert np.allclose(f.pose[:3, 3], [f.stamp, 0, 1], atol=1e-6) and np.allclose(f.pose[:3, :3], np.eye(3))
    assert frames[0].depth is None and frames[2].depth is None
    assert np.allclose(frames[1].depth, depth / 5000.0)


def test_tum_depth_frame0_and_intrinsics_errors(tmp_path):
    write_tum(tmp_path / "t")
    (tmp_path / "t" / "depth_frame0").mkdir()
    Image.fromarray(np.full((H, W), 5000, np.uint16)).save(tmp_path / "t" / "depth_frame0" / "d.png")
    seq = open_sequence(tmp_path / "t")
    assert isinstance(seq, TumSequence)
    assert np.allclose(seq[0].depth, 1.0)
    (tmp_path / "t" / "intrinsics.txt").write_text("fx 100\nfy 110\n")
    with pytest.raises(ValueError, match="lacks \\['cx', 'cy'\\]"):
        TumSequence(tmp_path / "t")
    (tmp_path / "t" / "intrinsics.txt").write_text("fx 100\nfy 110\ncx 1\ncy 1\nwidth 640\nheight 480\n")
    with pytest.raises(ValueError, match="640x480 but the images are 32x24"):
        TumSequence(tmp_path / "t")
    (tmp_path / "t" / "rgb" / "frame.png").write_bytes(b"")
    with pytest.raises(ValueError, match="not named by its timestamp"):
        TumSequence(tmp_path / "t")


def test_open_sequence_rejects_unknown_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_sequence(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a recognised sequence"):
        open_sequence(tmp_path / "other")


# ---------------------------------------------------------------- shared real data

@pytest.mark.skipif(not (SHARED / "redkitchen_rgbd_a").is_dir(), reason="shared data absent")
def test_shared_redkitchen():
    seq = open_sequence(SHARED / "redkitchen_rgbd_a")
    assert isinstance(seq, SevenScenesSequence) and len(seq) == 125
    assert seq.intrinsics == CameraIntrinsics(585, 585, 320, 240, 640, 480)
    assert seq.fps == pytest.approx(7.5)
    frame = seq[10]
    valid = frame.depth[frame.depth > 0]
    assert frame.rgb.shape == (480, 640, 3) and 0.5 < valid.min() and valid.max() < 4.0
    assert np.allclose(frame.pose[:3, :3] @ frame.pose[:3, :3].T, np.eye(3), atol=1e-3)
    assert frame.stamp == pytest.approx(10 / 7.5)


@pytest.mark.skipif(not (SHARED / "tum_fr3_long_office_17f").is_dir(), reason="shared data absent")
def test_shared_tum_office():
    seq = open_sequence(SHARED / "tum_fr3_long_office_17f")
    assert isinstance(seq, TumSequence) and len(seq) == 17
    assert seq.intrinsics == CameraIntrinsics(535.4, 539.2, 320.1, 247.6, 640, 480)
    assert seq.fps == pytest.approx(1.0, abs=0.05)
    first, second = seq[0], seq[1]
    assert first.pose is None and first.depth is not None  # no GT for frame 0; its depth ships separately
    assert 1.4 < first.depth[first.depth > 0].min() and first.depth.max() < 9.5
    assert second.depth is None
    # poses_interpolated_tum_format.txt: 1341847981.726650 -0.5953 2.7163 1.7358 ...
    assert np.allclose(second.pose[:3, 3], [-0.5953, 2.7163, 1.7358])
    assert sum(seq[k].pose is not None for k in range(len(seq))) == 16
