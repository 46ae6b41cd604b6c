"""The map server's state, without ROS: the voxel map behind a lock, integration, and safe save / load.

Integration runs on a worker thread while services read and replace the map, so every access takes the lock. A load
builds a complete new map first and swaps it in only when it succeeded; a failed save or load leaves the live map
and the files on disk as they were.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ov_mapping.core.types import Keyframe
from ov_mapping.mapping.persistence import export_ply, load_map, save_map
from ov_mapping.mapping.voxel_map import VoxelArrays, VoxelMap


class MapPathError(ValueError):
    """A requested map path is outside the map directory or otherwise unusable."""


def resolve_map_path(map_dir: Path, requested: str, suffix: str = ".npz") -> Path:
    """The file a SaveMap / LoadMap request names, refused unless it lies inside ``map_dir``.

    ``requested`` may be a bare name, a relative path inside the directory, or an absolute path that resolves inside
    it; the suffix is added when missing. Symlinks are resolved before the check, so a link cannot lead outside.
    """
    if not isinstance(requested, str) or not requested.strip():
        raise MapPathError("map path is empty")
    if "\x00" in requested:
        raise MapPathError("map path contains a NUL character")
    root = Path(map_dir).expanduser().resolve()
    candidate = Path(requested).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    if candidate.suffix != suffix:
        candidate = candidate.with_name(candidate.name + suffix)
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise MapPathError(f"refusing {requested!r}: maps are read and written only inside {root}")
    if resolved.is_dir():
        raise MapPathError(f"{resolved} is a directory")
    return resolved


@dataclass
class IntegrationStats:
    keyframes: int = 0
    points_in: int = 0
    points_rejected: int = 0
    seconds: float = 0.0


class MapStore:
    def __init__(self, voxel_size: float = 0.02, max_points: Optional[int] = None, frame_id: str = "map",
                 min_confidence: float = 0.0) -> None:
        self._map = VoxelMap(voxel_size, max_points, frame_id)
        self.min_confidence = float(min_confidence)
        self._lock = threading.RLock()
        self.stats = IntegrationStats()
        self._generation = 0  # bumped when a load swaps the map, whose own version counter starts afresh

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def voxel_map(self) -> VoxelMap:
        return self._map

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the map's content does (integration, field updates, loads)."""
        return self._generation, self._map.version

    def __len__(self) -> int:
        return len(self._map)

    def integrate_keyframe(self, keyframe: Keyframe) -> int:
        """Add a keyframe's confident, finite points; returns the number of new voxels."""
        points, colours = keyframe.valid_points(self.min_confidence)
        total = keyframe.pointmap.shape[0] * keyframe.pointmap.shape[1]
        start = time.perf_counter()
        with self._lock:
            added = self._map.integrate(points, colours) if len(points) else 0
            self.stats.keyframes += 1
            self.stats.points_in += len(points)
            self.stats.points_rejected += total - len(points)
            self.stats.seconds += time.perf_counter() - start
        return added

    def snapshot(self) -> tuple[tuple[int, int], VoxelArrays]:
        """(version, copies of the per-voxel arrays), taken atomically."""
        with self._lock:
            return self.version, self._map.to_arrays()

    def save(self, path: Path, extra: Optional[dict[str, np.ndarray]] = None, metadata: Optional[dict] = None,
             ply: bool = False) -> Path:
        with self._lock:
            saved = save_map(path, self._map, extra=extra, metadata=metadata)
            if ply:
                export_ply(Path(path).with_suffix(".ply"), self._map)
        return saved

    def load(self, path: Path):
        """Replace the map with the file's; on any error the live map is unchanged. Returns the LoadedMap."""
        loaded = load_map(path, max_points=self._map.max_points)
        with self._lock:
            self._map = loaded.voxel_map
            self._generation += 1
        return loaded
