"""What every input sequence offers: frames in time order, their rate, and optional ground truth.

A sequence is anything that satisfies :class:`Sequence` (a structural protocol). The readers in this package
share :class:`IndexedSequence`, which turns a ``load_frame(index)`` method into indexing, iteration and slicing
checks, so that each reader only says how to load one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol, runtime_checkable

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame


@dataclass(frozen=True)
class SceneMetadata:
    """Names behind the ids of a ground-truth scene.

    ``class_names[c]`` is the name of class id ``c`` (id 0 is ``"void"``: pixels or points that hit nothing).
    ``instance_classes[i]`` is the class id of instance ``i``; ``instance_colours[i]`` its colour name, a key of
    ``colour_rgb`` (the colour's nominal sRGB value). Instance id 0 is never used for an object.
    """

    class_names: tuple[str, ...]
    instance_classes: dict[int, int]
    instance_colours: dict[int, str]
    colour_rgb: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.class_names or self.class_names[0] != "void":
            raise ValueError(f"class_names must start with 'void' (id 0), got {self.class_names[:3]}")
        for instance, class_id in self.instance_classes.items():
            if instance <= 0:
                raise ValueError(f"instance ids must be positive, got {instance}")
            if not 0 < class_id < len(self.class_names):
                raise ValueError(f"instance {instance} has class id {class_id} outside 1..{len(self.class_names) - 1}")
        unknown = set(self.instance_colours) - set(self.instance_classes)
        if unknown:
            raise ValueError(f"instance_colours names instances without a class: {sorted(unknown)}")

    def class_of(self, instance: int) -> str:
        """The class name of ``instance``."""
        if instance not in self.instance_classes:
            raise KeyError(f"unknown instance id {instance}; known: {sorted(self.instance_classes)}")
        return self.class_names[self.instance_classes[instance]]

    def caption(self, instance: int) -> str:
        """A short description such as ``"a red chair"`` (no colour word when the colour is unknown)."""
        name = self.class_of(instance)
        colour = self.instance_colours.get(instance)
        words = f"{colour} {name}" if colour else name
        return f"an {words}" if words[0] in "aeiou" else f"a {words}"

    def instances_of_class(self, class_name: str) -> list[int]:
        """Instance ids whose class is ``class_name`` (sorted)."""
        if class_name not in self.class_names:
            raise KeyError(f"unknown class {class_name!r}; known: {self.class_names}")
        class_id = self.class_names.index(class_name)
        return sorted(i for i, c in self.instance_classes.items() if c == class_id)


@dataclass
class FrameGroundTruth:
    """Per-pixel labels of one frame: ``class_ids`` and ``instance_ids`` are int32 (H, W); 0 = void."""

    class_ids: np.ndarray
    instance_ids: np.ndarray

    def __post_init__(self) -> None:
        for name in ("class_ids", "instance_ids"):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype != np.int32:
                raise ValueError(f"{name} must be an int32 (H, W) array, got {getattr(array, 'dtype', type(array))} "
                                 f"of shape {getattr(array, 'shape', None)}")
        if self.class_ids.shape != self.instance_ids.shape:
            raise ValueError(f"class_ids {self.class_ids.shape} and instance_ids {self.instance_ids.shape} differ")


@dataclass
class LabeledCloud:
    """A ground-truth point cloud: points (N, 3) float32 world frame, colours (N, 3) uint8,
    class_ids and instance_ids (N,) int32."""

    points: np.ndarray
    colours: np.ndarray
    class_ids: np.ndarray
    instance_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.points)
        if self.points.shape != (n, 3) or self.points.dtype != np.float32:
            raise ValueError(f"points must be float32 (N, 3), got {self.points.dtype} {self.points.shape}")
        if self.colours.shape != (n, 3) or self.colours.dtype != np.uint8:
            raise ValueError(f"colours must be uint8 ({n}, 3), got {self.colours.dtype} {self.colours.shape}")
        for name in ("class_ids", "instance_ids"):
            array = getattr(self, name)
            if array.shape != (n,) or array.dtype != np.int32:
                raise ValueError(f"{name} must be int32 ({n},), got {array.dtype} {array.shape}")


@runtime_checkable
class Sequence(Protocol):
    """A finite, time-ordered list of RGB(-D) frames from one camera.

    - ``name``: a short human-readable name (folder or bag name).
    - ``intrinsics``: the camera, the same for every frame.
    - ``stamps``: (N,) float64 seconds, non-decreasing, ``stamps[i] == self[i].stamp``.
    - ``fps``: nominal frame rate in Hz (what a player should replay at by default).
    - ``metadata``: scene names behind ground-truth ids, or None when the sequence has no labels.
    - ``ground_truth(i)``: the labels of frame ``i`` or None.
    """

    name: str
    intrinsics: CameraIntrinsics

    @property
    def stamps(self) -> np.ndarray: ...

    @property
    def fps(self) -> float: ...

    @property
    def metadata(self) -> Optional[SceneMetadata]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> RGBDFrame: ...

    def __iter__(self) -> Iterator[RGBDFrame]: ...

    def ground_truth(self, index: int) -> Optional[FrameGroundTruth]: ...


def estimate_fps(stamps: np.ndarray, default: float) -> float:
    """Nominal rate from stamps (1 / median spacing), or ``default`` with fewer than two distinct stamps."""
    stamps = np.asarray(stamps, dtype=np.float64)
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else float(default)


class IndexedSequence:
    """Shared behaviour of random-access readers: subclasses set ``name``, ``intrinsics``, ``_stamps`` and ``_fps``
    and implement ``load_frame``; they may override ``ground_truth`` and ``metadata``."""

    name: str
    intrinsics: CameraIntrinsics
    _stamps: np.ndarray
    _fps: float

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps.copy()

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def metadata(self) -> Optional[SceneMetadata]:
        return None

    def __len__(self) -> int:
        return len(self._stamps)

    def resolve_index(self, index: int) -> int:
        """``index`` as a position in 0..len-1 (negative counts from the end); IndexError outside."""
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        n = len(self)
        position = int(index) + n if index < 0 else int(index)
        if not 0 <= position < n:
            raise IndexError(f"frame {index} out of range for {self.name!r} with {n} frames")
        return position

    def __getitem__(self, index: int) -> RGBDFrame:
        return self.load_frame(self.resolve_index(index))

    def __iter__(self) -> Iterator[RGBDFrame]:
        for position in range(len(self)):
            yield self.load_frame(position)

    def load_frame(self, position: int) -> RGBDFrame:
        raise NotImplementedError(f"{type(self).__name__} must implement load_frame")

    def ground_truth(self, index: int) -> Optional[FrameGroundTruth]:
        self.resolve_index(index)
        return None

    def __repr__(self) -> str:
        i = self.intrinsics
        return f"{type(self).__name__}({self.name!r}, {len(self)} frames, {i.width}x{i.height}, {self.fps:.3g} Hz)"
