"""Readers for recorded sequences stored as folders of images, and ``open_sequence`` to pick one by looking.

Two layouts (see ``../shared/data/*/README.md``):

- 7-Scenes: ``[frames/]frame-NNNNNN.color.(jpg|png)``, ``frame-NNNNNN.depth.png`` (uint16 mm, 0 or 65535 =
  invalid), ``frame-NNNNNN.pose.txt`` (4x4 camera-to-world) and ``camera-intrinsics.txt`` (3x3 K). The files carry
  no stamps: frame ``k`` of the folder is stamped ``k / fps``.
- TUM RGB-D: ``rgb/<stamp>.png`` named by their stamp in seconds; ``intrinsics.txt`` ("fx 535.4" lines); poses in
  ``poses_interpolated_tum_format.txt`` or ``groundtruth.txt`` ("t tx ty tz qx qy qz qw" lines, camera-to-world);
  depth from ``depth/<stamp>.png`` (nearest stamp) and/or a single ``depth_frame0/*.png`` for the first frame, in
  TUM's 5000 units per metre.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame
from ov_mapping.datasets.base import IndexedSequence, Sequence, estimate_fps
from ov_mapping.datasets.images import check_same_size, read_depth, read_image_size, read_rgb
from ov_mapping.datasets.poses import interpolate_trajectory

PathLike = Union[str, Path]

SEVEN_SCENES_SOURCE_FPS = 30.0  # Kinect v1 rate of the original 7-Scenes recordings
TUM_DEPTH_UNITS_PER_METRE = 5000.0
SEVEN_SCENES_DEPTH_UNITS_PER_METRE = 1000.0
TUM_POSE_FILES = ("poses_interpolated_tum_format.txt", "groundtruth.txt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_SEVEN_SCENES_COLOUR = re.compile(r"^frame-(\d+)\.color\.(png|jpg|jpeg)$", re.IGNORECASE)


def read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated text matrix -> float64 array of ``shape``; clear errors on bad files."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except ValueError as error:
        raise ValueError(f"{path} is not a numeric matrix: {error}") from error
    if matrix.shape != shape:
        raise ValueError(f"{path} must hold a {shape[0]}x{shape[1]} matrix, got {matrix.shape}")
    return matrix


def read_key_values(path: Path) -> dict[str, float]:
    """``key value`` lines (``#`` starts a comment) -> dict of floats."""
    values: dict[str, float] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(":", " ").replace("=", " ").split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected 'key value', got {line!r}")
        try:
            values[parts[0]] = float(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{number}: value of {parts[0]!r} is not a number: {parts[1]!r}") from None
    return values


def read_tum_trajectory(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A TUM trajectory file -> stamps (M,), translations (M, 3), quaternions (M, 4) (x, y, z, w), sorted by time.

    Lines that are comments or say something other than 8 numbers (e.g. "t NO GT") are skipped.
    """
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) != 8:
            continue
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            continue
    if not rows:
        raise ValueError(f"{path} holds no 't tx ty tz qx qy qz qw' lines")
    table = np.array(rows)
    table = table[np.argsort(table[:, 0], kind="stable")]
    return table[:, 0], table[:, 1:4], table[:, 4:8]


def read_colour_frame(path: Path, intrinsics: CameraIntrinsics) -> np.ndarray:
    """The RGB image at ``path``, refused unless it has the sequence's size."""
    rgb = read_rgb(path)
    check_same_size("colour image", path, rgb, intrinsics.width, intrinsics.height)
    return rgb


class SevenScenesSequence(IndexedSequence):
    """A 7-Scenes style folder (see module docstring).

    Args:
        path: the folder holding ``frames/`` (or the ``frame-*`` files themselves) and ``camera-intrinsics.txt``.
        fps: nominal rate of the frames present. Default: 30 Hz divided by the stride of the frame numbers
            (frames 0, 4, 8, ... -> 7.5 Hz).
        intrinsics: overrides ``camera-intrinsics.txt`` (the original 7-Scenes release has none; fx=fy=585).
    """

    def __init__(self, path: PathLike, fps: Optional[float] = None,
                 intrinsics: Optional[CameraIntrinsics] = None) -> None:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"7-Scenes folder {root} does not exist")
        frames_dir = root / "frames" if (root / "frames").is_dir() else root
        found = sorted((int(m.group(1)), p) for p in frames_dir.iterdir()
                       if (m := _SEVEN_SCENES_COLOUR.match(p.name)))
        if not found:
            raise ValueError(f"no frame-NNNNNN.color.(jpg|png) files in {frames_dir}")
        self.name = root.name
        self.frame_numbers = np.array([n for n, _ in found], dtype=np.int64)
        self._colour_paths = [p for _, p in found]
        if fps is None:
            strides = np.diff(self.frame_numbers)
            fps = SEVEN_SCENES_SOURCE_FPS / float(np.median(strides)) if len(strides) else SEVEN_SCENES_SOURCE_FPS
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._fps = float(fps)
        self._stamps = np.arange(len(found), dtype=np.float64) / self._fps
        width, height = read_image_size(self._colour_paths[0])
        if intrinsics is None:
            K_path = next((p for p in (root / "camera-intrinsics.txt", frames_dir / "camera-intrinsics.txt")
                           if p.is_file()), None)
            if K_path is None:
                raise FileNotFoundError(f"{root} has no camera-intrinsics.txt; pass intrinsics= instead")
            intrinsics = CameraIntrinsics.from_matrix(read_matrix(K_path, (3, 3)), width, height)
        elif (intrinsics.width, intrinsics.height) != (width, height):
            raise ValueError(f"intrinsics are {intrinsics.width}x{intrinsics.height} but the images are "
                             f"{width}x{height}")
        self.intrinsics = intrinsics

    def _sibling(self, position: int, suffix: str) -> Path:
        colour = self._colour_paths[position]
        return colour.with_name(colour.name.split(".", 1)[0] + suffix)

    def load_frame(self, position: int) -> RGBDFrame:
        rgb = read_colour_frame(self._colour_paths[position], self.intrinsics)
        w, h = self.intrinsics.width, self.intrinsics.height
        depth = None
        depth_path = self._sibling(position, ".depth.png")
        if depth_path.is_file():
            depth = read_depth(depth_path, SEVEN_SCENES_DEPTH_UNITS_PER_METRE)
            check_same_size("depth image", depth_path, depth, w, h)
        pose = None
        pose_path = self._sibling(position, ".pose.txt")
        if pose_path.is_file():
            pose = read_matrix(pose_path, (4, 4))
            # 7-Scenes marks frames where tracking failed with non-finite poses.
            pose = pose if np.isfinite(pose).all() else None
        return RGBDFrame(stamp=float(self._stamps[position]), rgb=rgb, intrinsics=self.intrinsics,
                         depth=depth, pose=pose)


def _stamped_images(folder: Path) -> tuple[np.ndarray, list[Path]]:
    """Images named ``<seconds>.<ext>`` in ``folder`` -> sorted stamps and paths; other names are an error."""
    entries = []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            entries.append((float(path.stem), path))
        except ValueError:
            raise ValueError(f"{path} is not named by its timestamp in seconds (e.g. 1341847980.722988.png)") from None
    entries.sort()
    return np.array([s for s, _ in entries], dtype=np.float64), [p for _, p in entries]


class TumSequence(IndexedSequence):
    """A TUM RGB-D style folder (see module docstring).

    Args:
        path: the folder holding ``rgb/``.
        intrinsics: overrides ``intrinsics.txt``.
        depth_units_per_metre: depth PNG scale (default: ``depth_scale`` in intrinsics.txt, else 5000).
        depth_tolerance: largest stamp difference (s) for pairing ``depth/`` images with colour images.
        pose_max_gap: largest gap (s) between trajectory samples to interpolate across.
    """

    def __init__(self, path: PathLike, intrinsics: Optional[CameraIntrinsics] = None,
                 depth_units_per_metre: Optional[float] = None, depth_tolerance: float = 0.02,
                 pose_max_gap: float = 0.05) -> None:
        root = Path(path)
        if not (root / "rgb").is_dir():
            raise FileNotFoundError(f"TUM folder {root} has no rgb/ folder")
        self.name = root.name
        self._stamps, self._colour_paths = _stamped_images(root / "rgb")
        if not len(self._stamps):
            raise ValueError(f"no images in {root / 'rgb'}")
        self._fps = estimate_fps(self._stamps, default=1.0)
        width, height = read_image_size(self._colour_paths[0])
        settings = read_key_values(root / "intrinsics.txt") if (root / "intrinsics.txt").is_file() else {}
        if intrinsics is None:
            missing = [k for k in ("fx", "fy", "cx", "cy") if k not in settings]
            if missing:
                raise ValueError(f"{root / 'intrinsics.txt'} is missing or lacks {missing}; pass intrinsics= instead")
            size = (int(settings.get("width", width)), int(settings.get("height", height)))
            if size != (width, height):
                raise ValueError(f"intrinsics.txt says {size[0]}x{size[1]} but the images are {width}x{height}")
            intrinsics = CameraIntrinsics(settings["fx"], settings["fy"], settings["cx"], settings["cy"], width, height)
        elif (intrinsics.width, intrinsics.height) != (width, height):
            raise ValueError(f"intrinsics are {intrinsics.width}x{intrinsics.height} but the images are "
                             f"{width}x{height}")
        self.intrinsics = intrinsics
        self.depth_units_per_metre = float(depth_units_per_metre or settings.get("depth_scale",
                                                                                 TUM_DEPTH_UNITS_PER_METRE))
        self._depth_paths = self._pair_depth(root, depth_tolerance)
        self._poses = self._read_poses(root, pose_max_gap)

    def _pair_depth(self, root: Path, tolerance: float) -> list[Optional[Path]]:
        paired: list[Optional[Path]] = [None] * len(self._stamps)
        if (root / "depth").is_dir():
            depth_stamps, depth_paths = _stamped_images(root / "depth")
            if len(depth_stamps):
                for position, stamp in enumerate(self._stamps):
                    k = int(np.argmin(np.abs(depth_stamps - stamp)))
                    if abs(depth_stamps[k] - stamp) <= tolerance:
                        paired[position] = depth_paths[k]
        if (root / "depth_frame0").is_dir():
            first = sorted(p for p in (root / "depth_frame0").iterdir() if p.suffix.lower() == ".png")
            if len(first) != 1:
                raise ValueError(f"{root / 'depth_frame0'} must hold exactly one PNG, found {len(first)}")
            paired[0] = first[0]
        return paired

    def _read_poses(self, root: Path, max_gap: float) -> list[Optional[np.ndarray]]:
        pose_file = next((root / n for n in TUM_POSE_FILES if (root / n).is_file()), None)
        if pose_file is None:
            return [None] * len(self._stamps)
        stamps, translations, quaternions = read_tum_trajectory(pose_file)
        return interpolate_trajectory(stamps, translations, quaternions, self._stamps, max_gap)

    def load_frame(self, position: int) -> RGBDFrame:
        rgb = read_colour_frame(self._colour_paths[position], self.intrinsics)
        w, h = self.intrinsics.width, self.intrinsics.height
        depth = None
        depth_path = self._depth_paths[position]
        if depth_path is not None:
            depth = read_depth(depth_path, self.depth_units_per_metre)
            check_same_size("depth image", depth_path, depth, w, h)
        pose = self._poses[position]
        return RGBDFrame(stamp=float(self._stamps[position]), rgb=rgb, intrinsics=self.intrinsics, depth=depth,
                         pose=None if pose is None else pose.copy())


def is_rosbag(path: Path) -> bool:
    """True for a rosbag2 folder (metadata.yaml or a storage file inside) or a bare .mcap / .db3 file."""
    if path.is_file():
        return path.suffix in (".mcap", ".db3")
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(path.glob("*.mcap")) or
                              any(path.glob("*.db3")))


def is_seven_scenes(path: Path) -> bool:
    folder = path / "frames" if (path / "frames").is_dir() else path
    return path.is_dir() and any(_SEVEN_SCENES_COLOUR.match(p.name) for p in folder.iterdir())


def open_sequence(path: PathLike, **options) -> Sequence:
    """Open a recorded sequence, recognising its format: a rosbag2 (folder, .mcap or .db3), a 7-Scenes folder or a
    TUM folder. ``options`` go to the reader (``RosbagSequence``, ``SevenScenesSequence`` or ``TumSequence``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"sequence {path} does not exist")
    if is_rosbag(path):
        from ov_mapping.datasets.rosbag import RosbagSequence  # rosbags is only needed for bags

        return RosbagSequence(path, **options)
    if path.is_dir() and is_seven_scenes(path):
        return SevenScenesSequence(path, **options)
    if (path / "rgb").is_dir():
        return TumSequence(path, **options)
    raise ValueError(f"{path} is not a recognised sequence: expected a rosbag2 (metadata.yaml, *.mcap or *.db3), "
                     "a 7-Scenes folder ([frames/]frame-NNNNNN.color.jpg) or a TUM folder (rgb/<stamp>.png)")
