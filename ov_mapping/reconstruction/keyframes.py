"""Keyframe selection by camera motion and elapsed time."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ov_mapping.geometry.camera import check_pose
from ov_mapping.geometry.transforms import relative_motion


def _non_negative(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


class KeyframeSelector:
    """Decides, frame by frame, whether a frame becomes a keyframe.

    A frame is a keyframe when it is the first one, when time went backwards (a replayed
    recording: the selector restarts), or when at least ``min_interval`` seconds passed since the
    last keyframe and either the camera moved ``min_translation`` metres or turned
    ``min_rotation_deg`` degrees from it, or ``max_interval`` seconds passed. Without poses only
    the time rules apply.
    """

    def __init__(
        self,
        min_translation: float = 0.10,
        min_rotation_deg: float = 10.0,
        max_interval: float = 2.0,
        min_interval: float = 0.0,
    ):
        """
        Args:
            min_translation: metres (>= 0; inf disables the rule).
            min_rotation_deg: degrees (>= 0; inf disables the rule).
            max_interval: seconds after which a frame is a keyframe anyway (inf disables it).
            min_interval: seconds that must pass between keyframes (< max_interval).
        """
        self.min_translation = _non_negative("min_translation", min_translation)
        self.min_rotation_deg = _non_negative("min_rotation_deg", min_rotation_deg)
        self.max_interval = _non_negative("max_interval", max_interval)
        self.min_interval = _non_negative("min_interval", min_interval)
        if math.isinf(self.min_interval) or self.min_interval >= self.max_interval:
            raise ValueError(
                f"min_interval ({self.min_interval}) must be finite and below max_interval ({self.max_interval})"
            )
        self.reset()

    def reset(self) -> None:
        """Forget the last keyframe: the next frame is a keyframe."""
        self._last_stamp: Optional[float] = None
        self._last_pose: Optional[np.ndarray] = None

    @property
    def last_stamp(self) -> Optional[float]:
        return self._last_stamp

    def select(self, stamp: float, pose: Optional[np.ndarray] = None) -> bool:
        """True if the frame at ``stamp`` (seconds) with ``pose`` (4x4 T_world_camera or None) is a
        keyframe; the selector then measures from this frame."""
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        if pose is not None:
            pose = check_pose("pose", pose)
        if self._is_keyframe(stamp, pose):
            self._last_stamp, self._last_pose = stamp, pose
            return True
        return False

    def _is_keyframe(self, stamp: float, pose: Optional[np.ndarray]) -> bool:
        if self._last_stamp is None or stamp < self._last_stamp:
            return True
        elapsed = stamp - self._last_stamp
        if elapsed < self.min_interval:
            return False
        if elapsed >= self.max_interval:
            return True
        if pose is None or self._last_pose is None:
            return False
        translation, rotation = relative_motion(self._last_pose, pose)
        return translation >= self.min_translation or math.degrees(rotation) >= self.min_rotation_deg
