"""A small transform buffer: stamped parent->child transforms, chained and interpolated in time.

The ROS wheels here have no tf2_ros, so the reconstruction node keeps its own buffer of the /tf and /tf_static edges it
hears. Lookups walk the tree from both frames to their common ancestor; each dynamic edge is interpolated between the
two samples that bracket the stamp (linear translation, slerp rotation) and refused outside the buffer's span.
"""

from __future__ import annotations

import bisect
from typing import Optional

import numpy as np

from ov_mapping.geometry.transforms import interpolate_pose, invert_pose


class TransformLookupError(LookupError):
    pass


class TransformBuffer:
    def __init__(self, cache_seconds: float = 10.0, max_extrapolation: float = 0.05) -> None:
        if not cache_seconds > 0:
            raise ValueError(f"cache_seconds must be > 0, got {cache_seconds}")
        self.cache_seconds = cache_seconds
        self.max_extrapolation = max_extrapolation
        self._parent: dict[str, str] = {}
        self._static: dict[str, np.ndarray] = {}
        self._stamps: dict[str, list[float]] = {}
        self._poses: dict[str, list[np.ndarray]] = {}

    def set_transform(self, parent: str, child: str, stamp: float, T_parent_child: np.ndarray,
                      static: bool = False) -> None:
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError(f"transform {parent}->{child} must be a finite 4x4 matrix")
        if not parent or not child or parent == child:
            raise ValueError(f"invalid frame names {parent!r} -> {child!r}")
        self._parent[child] = parent
        if static:
            self._static[child] = T
            return
        stamps = self._stamps.setdefault(child, [])
        poses = self._poses.setdefault(child, [])
        i = bisect.bisect_right(stamps, stamp)
        stamps.insert(i, stamp)
        poses.insert(i, T)
        # Forget samples older than the cache window.
        cut = bisect.bisect_left(stamps, stamps[-1] - self.cache_seconds)
        del stamps[:cut], poses[:cut]

    def _edge(self, child: str, stamp: float) -> np.ndarray:
        if child in self._static:
            return self._static[child]
        stamps, poses = self._stamps[child], self._poses[child]
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            return poses[i]
        if i == 0 or i == len(stamps):
            nearest = 0 if i == 0 else len(stamps) - 1
            if abs(stamps[nearest] - stamp) <= self.max_extrapolation:
                return poses[nearest]
            raise TransformLookupError(f"no transform for {self._parent[child]}->{child} at t={stamp:.3f} "
                               f"(buffer spans {stamps[0]:.3f}..{stamps[-1]:.3f})")
        t0, t1 = stamps[i - 1], stamps[i]
        return interpolate_pose(poses[i - 1], poses[i], (stamp - t0) / (t1 - t0))

    def _chain_to_root(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 100:
                raise TransformLookupError(f"transform tree has a loop through {frame!r}")
        return chain

    def lookup(self, target: str, source: str, stamp: float) -> np.ndarray:
        """T_target_source at ``stamp``: maps points in ``source`` coordinates into ``target`` coordinates."""
        if target == source:
            return np.eye(4)
        up_source, up_target = self._chain_to_root(source), self._chain_to_root(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TransformLookupError(f"frames {target!r} and {source!r} are not connected")

        def to_ancestor(chain: list[str]) -> np.ndarray:
            T = np.eye(4)
            for frame in chain[: chain.index(common)]:
                T = self._edge(frame, stamp) @ T
            return T

        return invert_pose(to_ancestor(up_target)) @ to_ancestor(up_source)

    def can_lookup(self, target: str, source: str, stamp: float) -> Optional[str]:
        """None when ``lookup`` would succeed, else the reason it would not."""
        try:
            self.lookup(target, source, stamp)
            return None
        except TransformLookupError as exc:
            return str(exc)
