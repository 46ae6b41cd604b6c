"""rosbag2 recordings (mcap or sqlite3) as sequences, read and written with the ``rosbags`` library (no ROS needed).

Reading picks the colour (``sensor_msgs/msg/Image`` or ``CompressedImage``), depth (``Image``), ``CameraInfo`` and
optional ``geometry_msgs/msg/PoseStamped`` (T_world_camera) topics by type and encoding unless named, pairs each
colour image with the depth image nearest in stamp (within ``sync_tolerance``) and interpolates the pose trajectory
at the colour stamps. ``write_bag`` records any sequence so that this reader (and ``ros2 bag play``) can replay it.

The decode/encode helpers work on rosbags' own message objects; the rclpy-side converter lives in ``ros/``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
from PIL import Image as PILImage, UnidentifiedImageError

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame
from ov_mapping.datasets.base import IndexedSequence, Sequence, estimate_fps
from ov_mapping.datasets.poses import interpolate_trajectory
from ov_mapping.geometry.transforms import matrix_to_quaternion

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"

# colour encoding -> channels (8 bits each); depth encoding -> pixel type
COLOUR_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
DEPTH_ENCODINGS = {"16UC1": np.dtype(np.uint16), "mono16": np.dtype(np.uint16), "32FC1": np.dtype(np.float32)}
COMPRESSED_FORMATS = {"jpeg": "JPEG", "png": "PNG"}

PathLike = Union[str, Path]


@lru_cache(maxsize=1)
def get_ros2_typestore():
    """The rosbags typestore of ROS 2 message types (sensor_msgs and geometry_msgs are the same in every distro)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


# ---------------------------------------------------------------- decoding rosbags messages -> numpy

def stamp_to_seconds(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def image_message_array(msg) -> np.ndarray:
    """The pixels of a ``sensor_msgs/Image`` as (H, W) or (H, W, C) in the encoding's own dtype and order,
    honouring ``step`` (row padding) and ``is_bigendian``."""
    encoding = msg.encoding
    if encoding in COLOUR_ENCODINGS:
        channels, dtype = COLOUR_ENCODINGS[encoding], np.dtype(np.uint8)
    elif encoding in DEPTH_ENCODINGS:
        channels, dtype = 1, DEPTH_ENCODINGS[encoding]
    else:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: "
                         f"{sorted(COLOUR_ENCODINGS) + sorted(DEPTH_ENCODINGS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels ({width}x{height})")
    if step < row_bytes or data.size < step * (height - 1) + row_bytes:
        raise ValueError(f"{encoding} image {width}x{height} needs step >= {row_bytes} and {step * height} bytes, "
                         f"got step {step} and {data.size} bytes")
    padded = np.zeros(step * height, dtype=np.uint8)
    padded[: min(data.size, step * height)] = data[: step * height]
    rows = padded.reshape(height, step)[:, :row_bytes]
    pixels = rows.copy().view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    pixels = pixels.astype(dtype, copy=False)  # back to native byte order
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, channels)


def decode_colour_image(msg) -> np.ndarray:
    """A colour ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise ValueError(f"{msg.encoding!r} is not a colour encoding; supported: {sorted(COLOUR_ENCODINGS)}")
    pixels = image_message_array(msg)
    if msg.encoding == "mono8":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def decode_depth_image(msg) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` (16UC1 / mono16 millimetres, 32FC1 metres) -> (H, W) float32 metres,
    0 where invalid (0, NaN or inf)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"{msg.encoding!r} is not a depth encoding; supported: {sorted(DEPTH_ENCODINGS)}")
    pixels = image_message_array(msg)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(1000.0)
    depth = pixels.astype(np.float32)
    depth[~np.isfinite(depth)] = 0.0
    return depth


def decode_compressed_image(msg) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (jpeg or png, e.g. format "rgb8; jpeg compressed bgr8") -> (H, W, 3)
    uint8 RGB."""
    if "compresseddepth" in msg.format.lower():
        raise ValueError(f"compressedDepth images are not supported (format {msg.format!r})")
    try:
        with PILImage.open(io.BytesIO(np.asarray(msg.data, dtype=np.uint8).tobytes())) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r}): {error}") from error


def intrinsics_from_camera_info(msg) -> CameraIntrinsics:
    """``sensor_msgs/CameraInfo`` -> CameraIntrinsics from ``k`` (distortion is ignored: images must be rectified)."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,) or int(msg.width) <= 0 or int(msg.height) <= 0:
        raise ValueError(f"CameraInfo must carry a 3x3 k and a size, got k of shape {k.shape} and "
                         f"{msg.width}x{msg.height}")
    return CameraIntrinsics.from_matrix(k.reshape(3, 3), int(msg.width), int(msg.height))


def pose_from_pose_stamped(msg) -> tuple[np.ndarray, np.ndarray]:
    """``geometry_msgs/PoseStamped`` -> translation (3,) and quaternion (4,) (x, y, z, w)."""
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z], dtype=np.float64), np.array([q.x, q.y, q.z, q.w], dtype=np.float64)


# ---------------------------------------------------------------- encoding numpy -> rosbags messages

def make_header(stamp: float, frame_id: str):
    types = get_ros2_typestore().types
    sec = int(np.floor(stamp))
    nanosec = min(int(round((stamp - sec) * 1e9)), 999_999_999)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def encode_colour_image(rgb: np.ndarray, encoding: str, stamp: float, frame_id: str):
    """(H, W, 3) uint8 RGB -> ``sensor_msgs/Image`` in ``encoding`` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if encoding not in COLOUR_ENCODINGS:
        raise ValueError(f"unsupported colour encoding {encoding!r}; supported: {sorted(COLOUR_ENCODINGS)}")
    if encoding == "mono8":
        # ITU-R 601 luma, the usual RGB -> grey weights.
        pixels = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    else:
        pixels = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        if COLOUR_ENCODINGS[encoding] == 4:
            pixels = np.concatenate([pixels, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return _image_message(np.ascontiguousarray(pixels), encoding, stamp, frame_id)


def encode_depth_image(depth: np.ndarray, encoding: str, stamp: float, frame_id: str):
    """(H, W) float32 metres -> ``sensor_msgs/Image`` 16UC1 (millimetres, 0 invalid) or 32FC1 (metres)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if encoding in ("16UC1", "mono16"):
        pixels = np.where(valid, np.clip(np.round(depth * 1000.0), 0, 65535), 0).astype(np.uint16)
    elif encoding == "32FC1":
        pixels = np.where(valid, depth, 0.0).astype(np.float32)
    else:
        raise ValueError(f"unsupported depth encoding {encoding!r}; supported: {sorted(DEPTH_ENCODINGS)}")
    return _image_message(pixels, encoding, stamp, frame_id)


def _image_message(pixels: np.ndarray, encoding: str, stamp: float, frame_id: str):
    height, width = pixels.shape[:2]
    little = pixels.dtype.byteorder == "<" or (pixels.dtype.byteorder == "=" and np.little_endian)
    return get_ros2_typestore().types[IMAGE](
        header=make_header(stamp, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0 if little or pixels.dtype.itemsize == 1 else 1, step=pixels.strides[0],
        data=np.frombuffer(pixels.tobytes(), dtype=np.uint8))


def encode_compressed_image(rgb: np.ndarray, image_format: str, stamp: float, frame_id: str):
    """(H, W, 3) uint8 RGB -> ``sensor_msgs/CompressedImage`` (``image_format`` "jpeg" or "png")."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if image_format not in COMPRESSED_FORMATS:
        raise ValueError(f"unsupported compressed format {image_format!r}; supported: {sorted(COMPRESSED_FORMATS)}")
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=COMPRESSED_FORMATS[image_format], quality=95)
    return get_ros2_typestore().types[COMPRESSED_IMAGE](
        header=make_header(stamp, frame_id), format=f"rgb8; {image_format} compressed rgb8",
        data=np.frombuffer(buffer.getvalue(), dtype=np.uint8))


def encode_camera_info(intrinsics: CameraIntrinsics, stamp: float, frame_id: str):
    """CameraIntrinsics -> ``sensor_msgs/CameraInfo`` (plumb_bob, zero distortion, P = [K | 0])."""
    types = get_ros2_typestore().types
    K = intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO](
        header=make_header(stamp, frame_id), height=intrinsics.height, width=intrinsics.width,
        distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)


def encode_pose_stamped(pose: np.ndarray, stamp: float, frame_id: str):
    """(4, 4) T_world_camera -> ``geometry_msgs/PoseStamped`` in ``frame_id`` (the world frame)."""
    if np.shape(pose) != (4, 4):
        raise ValueError(f"pose must be (4, 4), got {np.shape(pose)}")
    types = get_ros2_typestore().types
    x, y, z, w = matrix_to_quaternion(pose[:3, :3])
    tx, ty, tz = (float(v) for v in pose[:3, 3])
    return types[POSE_STAMPED](header=make_header(stamp, frame_id), pose=types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=tx, y=ty, z=tz),
        orientation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))


# ---------------------------------------------------------------- writing

def write_bag(path: PathLike, sequence: Sequence, storage: str = "mcap", colour_encoding: str = "rgb8",
              depth_encoding: str = "16UC1", namespace: str = "/camera", frame_id: str = "camera_optical_frame",
              world_frame: str = "world") -> Path:
    """Record ``sequence`` as a rosbag2 folder at ``path`` (which must not exist).

    Topics: ``{namespace}/color/image_raw`` (Image in ``colour_encoding``) or ``.../image_raw/compressed``
    (CompressedImage when ``colour_encoding`` is "jpeg" or "png"), ``{namespace}/color/camera_info``,
    ``{namespace}/depth/image_raw`` (frames that have depth) and ``{namespace}/pose`` (PoseStamped in
    ``world_frame``, frames that have a pose). Every message is stamped, and logged, at the frame's stamp.
    Returns the bag folder.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    compressed = colour_encoding in COMPRESSED_FORMATS
    if not compressed and colour_encoding not in COLOUR_ENCODINGS:
        raise ValueError(f"colour_encoding must be one of {sorted(COLOUR_ENCODINGS) + sorted(COMPRESSED_FORMATS)}, "
                         f"got {colour_encoding!r}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth_encoding must be one of {sorted(DEPTH_ENCODINGS)}, got {depth_encoding!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists already; rosbag2 writers never overwrite")
    typestore = get_ros2_typestore()
    colour_topic = f"{namespace}/color/image_raw" + ("/compressed" if compressed else "")
    with Writer(path, version=8, storage_plugin=plugins[storage]) as writer:
        connections: dict[str, object] = {}

        def write(topic: str, msgtype: str, msg, stamp: float) -> None:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            writer.write(connections[topic], int(round(stamp * 1e9)), typestore.serialize_cdr(msg, msgtype))

        for frame in sequence:
            stamp = frame.stamp
            if compressed:
                write(colour_topic, COMPRESSED_IMAGE, encode_compressed_image(frame.rgb, colour_encoding, stamp,
                                                                              frame_id), stamp)
            else:
                write(colour_topic, IMAGE, encode_colour_image(frame.rgb, colour_encoding, stamp, frame_id), stamp)
            write(f"{namespace}/color/camera_info", CAMERA_INFO,
                  encode_camera_info(frame.intrinsics, stamp, frame_id), stamp)
            if frame.depth is not None:
                write(f"{namespace}/depth/image_raw", IMAGE,
                      encode_depth_image(frame.depth, depth_encoding, stamp, frame_id), stamp)
            if frame.pose is not None:
                write(f"{namespace}/pose", POSE_STAMPED, encode_pose_stamped(frame.pose, stamp, world_frame), stamp)
    return path


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class _Message:
    """Where one message sits in the bag: its log time (ns), its rank among messages of its topic at that log
    time (bags may log several at one instant) and its stamp in seconds (header stamp, else log time)."""

    log_time: int
    rank: int
    stamp: float


@dataclass
class _TopicScan:
    msgtype: str
    messages: list[_Message]
    first: object  # the first deserialised message


def _scan_bag(reader, msgtypes: set[str]) -> dict[str, _TopicScan]:
    """One pass over the messages of ``msgtypes``: per topic, every message's position and stamp."""
    typestore = get_ros2_typestore()
    connections = [c for c in reader.connections if c.msgtype in msgtypes]
    scans: dict[str, _TopicScan] = {}
    last: dict[str, tuple[int, int]] = {}
    for connection, log_time, raw in reader.messages(connections=connections):
        msg = typestore.deserialize_cdr(raw, connection.msgtype)
        previous_time, previous_rank = last.get(connection.topic, (-1, -1))
        rank = previous_rank + 1 if previous_time == log_time else 0
        last[connection.topic] = (log_time, rank)
        header_stamp = stamp_to_seconds(msg.header.stamp)
        entry = _Message(log_time, rank, header_stamp if header_stamp > 0 else log_time * 1e-9)
        if connection.topic not in scans:
            scans[connection.topic] = _TopicScan(connection.msgtype, [], msg)
        scans[connection.topic].messages.append(entry)
    return scans


def _choose(kind: str, candidates: list[str], preferred: list[str]) -> Optional[str]:
    """One topic out of ``candidates``; ``preferred`` (a subset) breaks ties; ambiguity is an error."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if len(preferred) == 1:
        return preferred[0]
    raise ValueError(f"several {kind} topics {sorted(candidates)}; name one with {kind}_topic=")


def _common_prefix_length(a: str, b: str) -> int:
    parts_a, parts_b = a.strip("/").split("/"), b.strip("/").split("/")
    n = 0
    while n < min(len(parts_a), len(parts_b)) and parts_a[n] == parts_b[n]:
        n += 1
    return n


class RosbagSequence(IndexedSequence):
    """A rosbag2 recording as a sequence of RGBDFrames (one per colour image).

    Args:
        path: the bag folder, or its .mcap / .db3 file.
        colour_topic, depth_topic, info_topic, pose_topic: topic names; None = detect by type (colour: Image with a
            colour encoding or CompressedImage, raw preferred; depth: Image with 16UC1/mono16/32FC1, an "aligned"
            topic preferred; info: CameraInfo sharing the colour topic's namespace; pose: the only PoseStamped).
            "" = do not use (depth and pose only).
        intrinsics: use these instead of a CameraInfo topic.
        sync_tolerance: largest |colour stamp - depth stamp| (s) for a pair; colour frames without one get no depth.
        pose_max_gap: largest gap (s) between pose samples to interpolate across.
    """

    def __init__(self, path: PathLike, colour_topic: Optional[str] = None, depth_topic: Optional[str] = None,
                 info_topic: Optional[str] = None, pose_topic: Optional[str] = None,
                 intrinsics: Optional[CameraIntrinsics] = None, sync_tolerance: float = 0.02,
                 pose_max_gap: float = 0.2) -> None:
        from rosbags.rosbag2 import Reader, ReaderError

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        self.name = self.path.stem if self.path.is_file() else self.path.name
        try:
            with Reader(self.path) as reader:
                scans = _scan_bag(reader, {IMAGE, COMPRESSED_IMAGE, CAMERA_INFO, POSE_STAMPED})
        except ReaderError as error:
            raise ValueError(f"cannot read bag {self.path}: {error}") from error
        self.colour_topic = self._pick_colour(scans, colour_topic)
        self.depth_topic = self._pick_depth(scans, depth_topic)
        self.pose_topic = self._pick_topic(scans, pose_topic, POSE_STAMPED, "pose")
        colour = scans[self.colour_topic]
        self._colour = colour.messages
        self._colour_is_compressed = colour.msgtype == COMPRESSED_IMAGE
        self._stamps = np.array([m.stamp for m in colour.messages], dtype=np.float64)
        if np.any(np.diff(self._stamps) < 0):
            # Players and odometry want time order; bags are in log order, which can differ from header stamps.
            order = np.argsort(self._stamps, kind="stable")
            self._colour = [self._colour[k] for k in order]
            self._stamps = self._stamps[order]
        self._fps = estimate_fps(self._stamps, default=30.0)
        if intrinsics is None:
            self.info_topic = self._pick_info(scans, info_topic)
            intrinsics = intrinsics_from_camera_info(scans[self.info_topic].first)
        else:
            self.info_topic = None
        self.intrinsics = intrinsics
        self._depth = self._pair_depth(scans, sync_tolerance)
        self._poses = self._interpolate_poses(scans, pose_max_gap)

    # -- topic selection

    @staticmethod
    def _pick_topic(scans: dict[str, _TopicScan], topic: Optional[str], msgtype: str, kind: str) -> Optional[str]:
        if topic == "":
            return None
        if topic is not None:
            if topic not in scans or scans[topic].msgtype != msgtype:
                found = sorted(t for t, s in scans.items() if s.msgtype == msgtype)
                raise ValueError(f"bag has no {msgtype} messages on {topic!r}; {kind} topics with messages: {found}")
            return topic
        return _choose(kind, [t for t, s in scans.items() if s.msgtype == msgtype], [])

    def _pick_colour(self, scans: dict[str, _TopicScan], topic: Optional[str]) -> str:
        if topic is not None:
            if topic not in scans or scans[topic].msgtype not in (IMAGE, COMPRESSED_IMAGE):
                raise ValueError(f"bag has no Image/CompressedImage messages on {topic!r}; image topics: "
                                 f"{sorted(t for t, s in scans.items() if s.msgtype in (IMAGE, COMPRESSED_IMAGE))}")
            return topic
        raw = [t for t, s in scans.items() if s.msgtype == IMAGE and s.first.encoding in COLOUR_ENCODINGS]
        packed = [t for t, s in scans.items()
                  if s.msgtype == COMPRESSED_IMAGE and "compresseddepth" not in s.first.format.lower()]
        chosen = _choose("colour", raw + packed, raw)
        if chosen is None:
            raise ValueError(f"bag {self.path} has no colour image topic (Image rgb8/bgr8/rgba8/bgra8/mono8 or "
                             f"CompressedImage); topics scanned: {sorted(scans)}")
        return chosen

    def _pick_depth(self, scans: dict[str, _TopicScan], topic: Optional[str]) -> Optional[str]:
        if topic == "":
            return None
        if topic is not None:
            if topic not in scans or scans[topic].msgtype != IMAGE:
                raise ValueError(f"bag has no Image messages on depth topic {topic!r}")
            return topic
        depth = [t for t, s in scans.items() if s.msgtype == IMAGE and s.first.encoding in DEPTH_ENCODINGS]
        return _choose("depth", depth, [t for t in depth if "aligned" in t])

    def _pick_info(self, scans: dict[str, _TopicScan], topic: Optional[str]) -> str:
        if topic is not None:
            return self._pick_topic(scans, topic, CAMERA_INFO, "info")
        infos = [t for t, s in scans.items() if s.msgtype == CAMERA_INFO]
        if not infos:
            raise ValueError(f"bag {self.path} has no CameraInfo topic; pass intrinsics= or info_topic=")
        best = max(_common_prefix_length(t, self.colour_topic) for t in infos)
        return _choose("info", infos, [t for t in infos if _common_prefix_length(t, self.colour_topic) == best])

    # -- pairing

    def _pair_depth(self, scans: dict[str, _TopicScan], tolerance: float) -> list[Optional[_Message]]:
        if self.depth_topic is None:
            return [None] * len(self._colour)
        depth = sorted(scans[self.depth_topic].messages, key=lambda m: m.stamp)
        depth_stamps = np.array([m.stamp for m in depth])
        paired: list[Optional[_Message]] = []
        for stamp in self._stamps:
            k = int(np.argmin(np.abs(depth_stamps - stamp)))
            paired.append(depth[k] if abs(depth_stamps[k] - stamp) <= tolerance else None)
        return paired

    def _interpolate_poses(self, scans: dict[str, _TopicScan], max_gap: float) -> list[Optional[np.ndarray]]:
        if self.pose_topic is None:
            return [None] * len(self._colour)
        from rosbags.rosbag2 import Reader

        typestore = get_ros2_typestore()
        samples = []
        with Reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.pose_topic]
            for connection, _, raw in reader.messages(connections=connections):
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
                stamp = stamp_to_seconds(msg.header.stamp)
                samples.append((stamp, *pose_from_pose_stamped(msg)))
        samples.sort(key=lambda s: s[0])
        return interpolate_trajectory(np.array([s[0] for s in samples]), np.array([s[1] for s in samples]),
                                      np.array([s[2] for s in samples]), self._stamps, max_gap)

    # -- frames

    def _decode_colour(self, msg) -> np.ndarray:
        rgb = decode_compressed_image(msg) if self._colour_is_compressed else decode_colour_image(msg)
        if rgb.shape[:2] != (self.intrinsics.height, self.intrinsics.width):
            raise ValueError(f"colour image on {self.colour_topic} is {rgb.shape[1]}x{rgb.shape[0]} but the camera "
                             f"is {self.intrinsics.width}x{self.intrinsics.height}")
        return rgb

    def _decode_depth(self, msg) -> np.ndarray:
        depth = decode_depth_image(msg)
        if depth.shape != (self.intrinsics.height, self.intrinsics.width):
            raise ValueError(f"depth on {self.depth_topic} is {depth.shape[1]}x{depth.shape[0]} but colour is "
                             f"{self.intrinsics.width}x{self.intrinsics.height}: depth must be registered to colour "
                             "(use an aligned depth topic)")
        return depth

    def _frame(self, position: int, colour_msg, depth_msg) -> RGBDFrame:
        pose = self._poses[position]
        return RGBDFrame(stamp=float(self._stamps[position]), rgb=self._decode_colour(colour_msg),
                         intrinsics=self.intrinsics,
                         depth=None if depth_msg is None else self._decode_depth(depth_msg),
                         pose=None if pose is None else pose.copy())

    def _read_one(self, reader, topic: str, entry: _Message):
        connections = [c for c in reader.connections if c.topic == topic]
        found = [(c, raw) for c, t, raw in reader.messages(connections=connections, start=entry.log_time,
                                                            stop=entry.log_time + 1)]
        connection, raw = found[entry.rank]
        return get_ros2_typestore().deserialize_cdr(raw, connection.msgtype)

    def load_frame(self, position: int) -> RGBDFrame:
        """Random access: opens the bag for this one frame (``__iter__`` reads it in one pass instead)."""
        from rosbags.rosbag2 import Reader

        with Reader(self.path) as reader:
            colour = self._read_one(reader, self.colour_topic, self._colour[position])
            depth_entry = self._depth[position]
            depth = None if depth_entry is None else self._read_one(reader, self.depth_topic, depth_entry)
        return self._frame(position, colour, depth)

    def __iter__(self) -> Iterator[RGBDFrame]:
        """All frames in stamp order from a single pass over the bag, holding only not-yet-complete frames."""
        from rosbags.rosbag2 import Reader

        typestore = get_ros2_typestore()
        wanted: dict[tuple[str, int, int], list[int]] = {}
        for position, (colour, depth) in enumerate(zip(self._colour, self._depth)):
            wanted.setdefault((self.colour_topic, colour.log_time, colour.rank), []).append(position)
            if depth is not None:
                wanted.setdefault((self.depth_topic, depth.log_time, depth.rank), []).append(position)
        topics = {self.colour_topic, self.depth_topic} - {None}
        pending: dict[tuple[str, int, int], object] = {}
        next_position = 0
        last: dict[str, tuple[int, int]] = {}
        with Reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic in topics]
            for connection, log_time, raw in reader.messages(connections=connections):
                previous_time, previous_rank = last.get(connection.topic, (-1, -1))
                rank = previous_rank + 1 if previous_time == log_time else 0
                last[connection.topic] = (log_time, rank)
                key = (connection.topic, log_time, rank)
                if key in wanted:
                    pending[key] = typestore.deserialize_cdr(raw, connection.msgtype)
                while next_position < len(self._colour):
                    colour_key = (self.colour_topic, self._colour[next_position].log_time,
                                  self._colour[next_position].rank)
                    depth = self._depth[next_position]
                    depth_key = None if depth is None else (self.depth_topic, depth.log_time, depth.rank)
                    if colour_key not in pending or (depth_key is not None and depth_key not in pending):
                        break
                    yield self._frame(next_position, pending[colour_key],
                                      None if depth_key is None else pending[depth_key])
                    self._release(pending, wanted, colour_key, next_position)
                    if depth_key is not None:
                        self._release(pending, wanted, depth_key, next_position)
                    next_position += 1
        if next_position != len(self._colour):
            raise RuntimeError(f"bag {self.path} changed while reading: got {next_position} of "
                               f"{len(self._colour)} frames")

    @staticmethod
    def _release(pending: dict, wanted: dict, key: tuple, position: int) -> None:
        """Forget a message once the last frame that needs it has been made (a depth image may serve two)."""
        if wanted[key][-1] == position:
            pending.pop(key, None)
