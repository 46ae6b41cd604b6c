"""rosbag2 reading and writing with rosbags: round trips for every encoding and both storages, topic detection,
colour/depth sync, and clear errors."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame  # noqa: E402
from ov_mapping.datasets import open_sequence  # noqa: E402
from ov_mapping.geometry.transforms import quaternion_to_matrix  # noqa: E402
from ov_mapping.datasets.rosbag import (  # noqa: E402
    CAMERA_INFO, IMAGE, RosbagSequence, decode_colour_image, decode_depth_image, encode_camera_info,
    encode_colour_image, encode_depth_image, get_ros2_typestore, write_bag,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INTRINSICS = CameraIntrinsics(40.0, 42.0, 11.5, 7.5, 24, 16)


class FrameList:
    """The least a sequence needs for write_bag: iteration over frames."""

    def __init__(self, frames):
        self.frames = frames

    def __iter__(self):
        return iter(self.frames)


def make_frames(n=4, seed=0, with_depth=True, with_pose=True):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        # smooth colour so that lossy JPEG stays close
        yy, xx = np.mgrid[0:16, 0:24]
        rgb = np.stack([xx * 10 + k * 5, yy * 15, np.full_like(xx, 40 * k)], axis=-1).astype(np.uint8)
        depth = rng.uniform(0.5, 5.0, size=(16, 24)).astype(np.float32)
        depth[0, :3] = 0.0
        pose = np.eye(4)
        pose[:3, :3] = quaternion_to_matrix(rng.normal(size=4))
        pose[:3, 3] = rng.normal(size=3)
        frames.append(RGBDFrame(stamp=100.0 + 0.1 * k, rgb=rgb, intrinsics=INTRINSICS,
                                depth=depth if with_depth else None, pose=pose if with_pose else None))
    return frames


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("colour, depth", [("rgb8", "16UC1"), ("bgr8", "32FC1"), ("rgba8", "mono16"),
                                           ("bgra8", "16UC1"), ("mono8", "32FC1"), ("png", "16UC1"),
                                           ("jpeg", "32FC1")])
def test_round_trip(tmp_path, storage, colour, depth):
    frames = make_frames()
    path = write_bag(tmp_path / "bag", FrameList(frames), storage=storage, colour_encoding=colour,
                     depth_encoding=depth)
    seq = open_sequence(path)
    assert isinstance(seq, RosbagSequence)
    assert len(seq) == 4 and seq.intrinsics == INTRINSICS
    assert seq.fps == pytest.approx(10.0)
    assert np.allclose(seq.stamps, [f.stamp for f in frames], atol=1e-9)
    read = list(seq)
    for original, frame in zip(frames, read):
        if colour == "mono8":
            grey = np.round(original.rgb @ np.array([0.299, 0.587, 0.114]))
            assert np.abs(frame.rgb[..., 0].astype(int) - grey).max() <= 1
            assert np.array_equal(frame.rgb[..., 0], frame.rgb[..., 2])
        elif colour == "jpeg":
            assert np.abs(frame.rgb.astype(int) - original.rgb).mean() < 4
        else:
            assert np.array_equal(frame.rgb, original.rgb)
        tolerance = 5e-4 if depth in ("16UC1", "mono16") else 0  # millimetre rounding
        assert np.abs(frame.depth - original.depth).max() <= tolerance
        assert np.all(frame.depth[0, :3] == 0)
        assert np.allclose(frame.pose, original.pose, atol=1e-9)
        assert frame.stamp == pytest.approx(original.stamp, abs=1e-9)
    random_access = seq[2]
    assert np.array_equal(random_access.rgb, read[2].rgb) and np.array_equal(random_access.depth, read[2].depth)


def test_rgb_only_bag_and_bare_storage_file(tmp_path):
    path = write_bag(tmp_path / "bag", FrameList(make_frames(3, with_depth=False, with_pose=False)))
    seq = RosbagSequence(path)
    assert seq.depth_topic is None and seq.pose_topic is None
    assert all(f.depth is None and f.pose is None for f in seq)
    storage_file = next(path.glob("*.mcap"))
    assert len(open_sequence(storage_file)) == 3


def _write_custom(path, colour_stamps, depth_stamps, depth_size=(16, 24), extra_colour_topic=False, info=True):
    """A bag with hand-chosen stamps: colour on /a/image, depth on /a/depth, optional second colour topic."""
    typestore = get_ros2_typestore()
    rgb = np.full((16, 24, 3), 7, np.uint8)
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        c_img = writer.add_connection("/a/image", IMAGE, typestore=typestore)
        c_dep = writer.add_connection("/a/depth", IMAGE, typestore=typestore)
        c_info = writer.add_connection("/a/camera_info", CAMERA_INFO, typestore=typestore)
        c_other = writer.add_connection("/b/image", IMAGE, typestore=typestore) if extra_colour_topic else None
        events = [(s, "c", k) for k, s in enumerate(colour_stamps)] + [(s, "d", k) for k, s in enumerate(depth_stamps)]
        for stamp, kind, k in sorted(events):
            ns = int(round(stamp * 1e9))
            if kind == "c":
                writer.write(c_img, ns, typestore.serialize_cdr(encode_colour_image(rgb, "rgb8", stamp, "cam"), IMAGE))
                if info:
                    writer.write(c_info, ns, typestore.serialize_cdr(encode_camera_info(INTRINSICS, stamp, "cam"),
                                                                     CAMERA_INFO))
                if c_other is not None:
                    writer.write(c_other, ns, typestore.serialize_cdr(encode_colour_image(rgb, "bgr8", stamp, "c"),
                                                                      IMAGE))
            else:
                depth = np.full(depth_size, 1.0 + k, np.float32)
                writer.write(c_dep, ns, typestore.serialize_cdr(encode_depth_image(depth, "32FC1", stamp, "cam"),
                                                                IMAGE))
    return path


def test_sync_pairs_nearest_depth_within_tolerance(tmp_path):
    # depth arrives 8 ms after colour, except the third colour image has none within 20 ms
    path = _write_custom(tmp_path / "bag", [1.0, 1.1, 1.2, 1.3], [1.008, 1.108, 1.25, 1.308])
    seq = RosbagSequence(path)
    frames = list(seq)
    assert [None if f.depth is None else float(f.depth[0, 0]) for f in frames] == [1.0, 2.0, None, 4.0]
    assert seq[2].depth is None and seq[3].depth[0, 0] == 4.0
    loose = RosbagSequence(path, sync_tolerance=0.06)
    assert loose[2].depth[0, 0] == 3.0


def test_topic_choice_and_errors(tmp_path):
    path = _write_custom(tmp_path / "two", [1.0, 1.1], [1.0, 1.1], extra_colour_topic=True)
    with pytest.raises(ValueError, match="several colour topics .* colour_topic="):
        RosbagSequence(path)
    seq = RosbagSequence(path, colour_topic="/b/image")
    assert seq.info_topic == "/a/camera_info"  # the only one, though in another namespace
    assert np.array_equal(seq[0].rgb, np.full((16, 24, 3), 7, np.uint8))
    with pytest.raises(ValueError, match="no Image/CompressedImage messages on '/nope'"):
        RosbagSequence(path, colour_topic="/nope")
    assert RosbagSequence(path, colour_topic="/a/image", depth_topic="")[0].depth is None

    mismatched = _write_custom(tmp_path / "mismatch", [1.0], [1.0], depth_size=(8, 12))
    with pytest.raises(ValueError, match="depth must be registered to colour"):
        RosbagSequence(mismatched)[0]

    no_info = _write_custom(tmp_path / "noinfo", [1.0], [1.0], info=False)
    with pytest.raises(ValueError, match="no CameraInfo topic"):
        RosbagSequence(no_info)
    assert RosbagSequence(no_info, intrinsics=INTRINSICS)[0].depth[0, 0] == 1.0

    with pytest.raises(FileNotFoundError):
        RosbagSequence(tmp_path / "missing")
    with pytest.raises(FileExistsError):
        write_bag(path, FrameList(make_frames(1)))
    with pytest.raises(ValueError, match="storage must be one of"):
        write_bag(tmp_path / "x", FrameList(make_frames(1)), storage="bag1")
    with pytest.raises(ValueError, match="colour_encoding"):
        write_bag(tmp_path / "x", FrameList(make_frames(1)), colour_encoding="yuv422")


def test_decoders_honour_padding_endianness_and_reject_bad_messages():
    types = get_ros2_typestore().types
    header = encode_colour_image(np.zeros((2, 2, 3), np.uint8), "rgb8", 0.0, "c").header
    # 2x3 rgb8 with 2 padding bytes per row
    rows = [list(range(9)) + [255, 255], list(range(10, 19)) + [255, 255]]
    msg = types[IMAGE](header=header, height=2, width=3, encoding="rgb8", is_bigendian=0, step=11,
                       data=np.array(rows, np.uint8).reshape(-1))
    assert np.array_equal(decode_colour_image(msg)[1, 2], [16, 17, 18])
    big = np.array([[1000, 2000]], dtype=">u2")
    msg = types[IMAGE](header=header, height=1, width=2, encoding="16UC1", is_bigendian=1, step=4,
                       data=np.frombuffer(big.tobytes(), np.uint8))
    assert np.allclose(decode_depth_image(msg), [[1.0, 2.0]])
    nan = types[IMAGE](header=header, height=1, width=2, encoding="32FC1", is_bigendian=0, step=8,
                       data=np.frombuffer(np.array([np.nan, 2.5], np.float32).tobytes(), np.uint8))
    assert decode_depth_image(nan).tolist() == [[0.0, 2.5]]
    short = types[IMAGE](header=header, height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                         data=np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="needs step >= 9 and 18 bytes"):
        decode_colour_image(short)
    with pytest.raises(ValueError, match="not a colour encoding"):
        decode_colour_image(msg)
    odd = types[IMAGE](header=header, height=1, width=1, encoding="yuv422", is_bigendian=0, step=2,
                       data=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="not a depth encoding"):
        decode_depth_image(odd)


@pytest.mark.skipif(not (SHARED / "redkitchen_rgbd_a").is_dir(), reason="shared data absent")
def test_shared_folder_converts_to_bag(tmp_path):
    folder = open_sequence(SHARED / "redkitchen_rgbd_a")
    frames = [folder[k] for k in range(3)]
    path = write_bag(tmp_path / "kitchen", FrameList(frames), storage="sqlite3", colour_encoding="jpeg")
    seq = open_sequence(path)
    assert len(seq) == 3 and seq.intrinsics == folder.intrinsics
    assert seq.fps == pytest.approx(7.5)
    for original, frame in zip(frames, seq):
        assert np.abs(frame.depth - original.depth).max() < 1e-6
        assert np.abs(frame.rgb.astype(int) - original.rgb).mean() < 6
        # 7-Scenes rotations are only orthonormal to ~1e-4, and a quaternion stores the nearest rotation
        assert np.allclose(frame.pose, original.pose, atol=1e-3)
