"""Streaming CLIP3R reconstruction (SLAM3R's pipeline, causal by default): RGB images in, world keyframes out.

Per camera image, :class:`Clip3rStream`:

1. keeps every ``keyframe_stride``-th frame as a keyframe (the stride is fixed, or chosen once from
   1..``max_stride`` by the highest mean I2P confidence of short probe windows at the start of the stream);
2. builds the world from the first ``initial_window`` keyframes (5, or 3 when the best mean confidence is below
   ``initial_min_confidence``): every view is tried as I2P reference, the most confident one defines the world
   frame, scaled so that the confident points lie at mean distance 1 from its camera;
3. runs I2P for each later keyframe on a causal window of the ``window_radius`` previous keyframes (plus an
   opt-in ``lookahead`` of later ones, which delays its output) with the keyframe as reference: its *local*
   pointmap, in its own camera frame, normalised to mean distance 1 (SLAM3R's L2W input, with unconfident
   points at the origin);
4. registers keyframes in groups of ``register_group_size`` with L2W against the ``num_scene_frames`` buffered
   keyframes that I2P's retrieval head ranks best (mean of (s - 1) / s); the buffer keeps at most
   ``buffer_size`` keyframes by reservoir sampling;
5. recovers each keyframe's pose T_world_camera and scale by a robust confidence-weighted similarity fit of its
   local to its world pointmap, and its intrinsics from the local pointmap.

Networks are reached only through an ``ov_mapping.engines.Clip3rRunner``: ``engines.make_runner`` builds one on
PyTorch, ONNX Runtime or TensorRT. Memory is bounded on an endless stream: encoder tokens and pointmaps live only
while a window, the pending group or the scene buffer can still use them (:meth:`Clip3rStream.memory_counts`).

With CLIP3R weights (a runner whose ``clip_dim`` is not None: its I2P has Ov3R's CLIP injection) every frame
comes with its object-level CLIP map F_oCLIP (``segmentation.clip_map.object_clip_map``); the stream pools it to
the injection's 196 patch tokens, which live exactly as long as the frame's encoder tokens, and passes them to
every I2P and retrieval call.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ov_mapping.core.types import CameraIntrinsics, Keyframe
from ov_mapping.engines.protocol import Clip3rRunner, ViewPointmap
from ov_mapping.reconstruction.clip3r_geometry import recover_pose, world_scale
from ov_mapping.reconstruction.preprocess import (
    MODEL_SIZE,
    CropBox,
    check_rgb,
    estimate_intrinsics,
    image_to_model_intrinsics,
    model_to_crop_intrinsics,
    prepare_image,
)
from ov_mapping.segmentation.clip_map import clip_map_patch_tokens

# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class StreamConfig:
    """Parameters of :class:`Clip3rStream`; defaults are SLAM3R's, except the causal window (radius 5 back, no
    look-ahead: at most 6 views instead of 11).

    keyframe_stride: every n-th frame is a keyframe; None chooses n in 1..``max_stride`` automatically from the
        first ``(stride_probe_views - 1) * max_stride + stride_probe_windows`` frames (held back until then).
    stride_probe_views / stride_probe_windows: views per probe window and probe windows per candidate stride.
    initial_window: keyframes that build the world; ``initial_window_fallback`` of them are used instead when
        the best mean I2P confidence is below ``initial_min_confidence``.
    window_radius: past keyframes in each I2P window; lookahead: later keyframes (delays output by as many).
    i2p_min_confidence: local points with I2P confidence <= this are dropped.
    register_group_size: keyframes registered per L2W call (a keyframe waits until its group is full, or
        :meth:`Clip3rStream.flush`); 1 gives the lowest latency.
    num_scene_frames: scene frames per L2W call (retrieved when the buffer holds more).
    buffer_size: scene-frame buffer bound (reservoir sampling over all registered keyframes).
    l2w_min_confidence: world points with L2W confidence <= this are dropped (NaN in the output).
    fallback_focal: focal length (pixels of the 224 x 224 model input; 194 = 60 degrees field of view) used
        when a keyframe comes without intrinsics and none can be estimated from its local pointmap (an untrained
        network) and no earlier keyframe had an estimate.
    max_fit_points: pixels used per pose fit. seed: reservoir sampling and fit subsets.
    """

    keyframe_stride: Optional[int] = None
    max_stride: int = 20
    stride_probe_views: int = 3
    stride_probe_windows: int = 2
    initial_window: int = 5
    initial_window_fallback: int = 3
    initial_min_confidence: float = 5.0
    window_radius: int = 5
    lookahead: int = 0
    i2p_min_confidence: float = 1.5
    register_group_size: int = 10
    num_scene_frames: int = 10
    buffer_size: int = 100
    l2w_min_confidence: float = 10.0
    fallback_focal: float = 194.0
    max_fit_points: int = 8192
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"StreamConfig.{name} must be an int >= {minimum}, got {value!r}")

        if self.keyframe_stride is not None:
            integer("keyframe_stride", 1)
        for name, minimum in (("max_stride", 1), ("stride_probe_views", 2), ("stride_probe_windows", 1),
                              ("initial_window", 2), ("initial_window_fallback", 2), ("window_radius", 1),
                              ("lookahead", 0), ("register_group_size", 1), ("num_scene_frames", 1),
                              ("buffer_size", 1), ("max_fit_points", 3), ("seed", 0)):
            integer(name, minimum)
        if self.initial_window_fallback > self.initial_window:
            raise ValueError("StreamConfig.initial_window_fallback must not exceed initial_window")
        if self.buffer_size < self.initial_window:
            raise ValueError("StreamConfig.buffer_size must hold at least the initial window")
        for name in ("initial_min_confidence", "i2p_min_confidence", "l2w_min_confidence", "fallback_focal"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"StreamConfig.{name} must be finite, got {getattr(self, name)}")
        if self.fallback_focal <= 0:
            raise ValueError(f"StreamConfig.fallback_focal must be positive, got {self.fallback_focal}")

    @property
    def stride_prefix_frames(self) -> int:
        """Frames held back to choose the stride automatically."""
        return (self.stride_probe_views - 1) * self.max_stride + self.stride_probe_windows


# -------------------------------------------------------------------------------------------------- stream state


@dataclass
class StreamedKeyframe:
    """One reconstructed keyframe: the Keyframe plus the frame it came from, its local-to-world ``scale`` (world
    units per unit of its local pointmap, normalised so that its confident points lie at mean distance 1),
    the median pose-fit residual (world units) and where its intrinsics came from: "given" (pushed with the
    image), "estimated" (from its local pointmap), "previous" (the last estimate: this one failed) or
    "fallback" (``StreamConfig.fallback_focal``).

    The Keyframe's ``rgb`` is the centred square crop at the original resolution, which its 224 x 224 world
    pointmap (NaN where dropped) covers exactly; ``intrinsics`` are of that crop; ``confidence`` is L2W's, or
    I2P's for the keyframes of the initial window (they are not registered); ``metric_scale`` is False.
    """

    keyframe: Keyframe
    frame_index: int
    scale: float
    fit_residual: float
    intrinsics_source: str


@dataclass
class _Frame:
    """A frame on its way through the stream; fields are dropped as soon as nothing needs them."""

    frame_index: int
    stamp: float
    image: Optional[np.ndarray]  # (3, 224, 224) model input until encoded
    crop_rgb: np.ndarray
    box: CropBox
    known_intrinsics: Optional[CameraIntrinsics] = None  # of the model input, when pushed with the image
    tokens: Any = None
    clip: Optional[torch.Tensor] = None  # (1, 196, clip_dim) injection tokens, with a CLIP runner
    keyframe_id: int = -1
    local_pts: Optional[np.ndarray] = None  # (224, 224, 3), own camera frame, confident points at mean distance 1
    local_conf: Optional[np.ndarray] = None


@dataclass
class _SceneFrame:
    """A buffered scene frame: tokens and the dense world pointmap L2W conditions on (L2W's raw output, or for
    the initial window I2P's with unconfident points at the origin, as SLAM3R feeds them)."""

    keyframe_id: int
    tokens: Any
    clip: Optional[torch.Tensor]
    world_pts: np.ndarray


class SceneBuffer:
    """At most ``capacity`` scene frames, a uniform sample of all offered ones (reservoir sampling)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.frames: list[_SceneFrame] = []
        self.offered = 0
        self._rng = np.random.default_rng(seed)

    def offer(self, frame: _SceneFrame) -> None:
        self.offered += 1
        if len(self.frames) < self.capacity:
            self.frames.append(frame)
            return
        slot = int(self._rng.integers(self.offered))
        if slot < self.capacity:
            self.frames[slot] = frame  # the evicted frame's tokens and pointmap are freed here


def rank_scene_frames(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` best candidates, best first, from retrieval scores (R, K, S) >= 1.

    Each score s maps to (s - 1) / s in [0, 1) (so a few huge logits cannot dominate) and is averaged over the
    K keyframes and S patches.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3 or not np.isfinite(scores).all() or (scores < 1).any():
        raise ValueError(f"scores must be finite (R, K, S) retrieval scores >= 1, got shape {scores.shape}")
    mean = ((scores - 1.0) / scores).mean(axis=(1, 2))
    return np.argsort(-mean, kind="stable")[:count]


def probe_stride_windows(num_frames: int, max_stride: int, views: int, windows: int) -> dict[int, list[list[int]]]:
    """Probe windows per candidate stride: {stride: [[frame indices], ...]} using frames 0..num_frames - 1."""
    out: dict[int, list[list[int]]] = {}
    for stride in range(1, max_stride + 1):
        starts = [s for s in range(windows) if s + (views - 1) * stride < num_frames]
        if starts:
            out[stride] = [[s + k * stride for k in range(views)] for s in starts]
    return out


class Clip3rStream:
    """The streaming engine; see the module docstring. Not thread-safe: one caller pushes frames in order.

    Usage: ``for rgb, stamp in camera: for item in stream.push(rgb, stamp): publish(item.keyframe)``, then
    ``stream.flush()`` at the end of a recording.
    """

    def __init__(self, runner: Clip3rRunner, config: StreamConfig = StreamConfig()) -> None:
        if not isinstance(config, StreamConfig):
            raise ValueError(f"config must be a StreamConfig, got {type(config).__name__}")
        for method in ("encode", "i2p", "retrieval", "l2w"):
            if not callable(getattr(runner, method, None)):
                raise ValueError(f"runner must implement the Clip3rRunner protocol; it lacks {method}()")
        clip_dim = getattr(runner, "clip_dim", None)  # runners without the attribute have no CLIP injection
        if clip_dim is not None and (isinstance(clip_dim, bool) or not isinstance(clip_dim, int) or clip_dim < 1):
            raise ValueError(f"runner.clip_dim must be None or a positive int, got {clip_dim!r}")
        self.runner = runner
        self.config = config
        self.clip_dim: Optional[int] = clip_dim
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a new world."""
        cfg = self.config
        self._stride: Optional[int] = cfg.keyframe_stride
        self._frame_count = 0
        self._keyframe_count = 0
        self._prefix: list[_Frame] = []  # held back while choosing the stride
        self._initial: list[_Frame] = []  # keyframes waiting for the world to be built
        self._initialised = False
        self._recent: deque[_Frame] = deque(maxlen=cfg.window_radius + cfg.lookahead + 1)
        self._awaiting: deque[_Frame] = deque()  # keyframes whose look-ahead is not complete yet
        self._pending: list[_Frame] = []  # local pointmap ready, waiting for registration
        self._buffer = SceneBuffer(cfg.buffer_size, cfg.seed)
        self._last_estimate: Optional[CameraIntrinsics] = None

    @property
    def keyframe_stride(self) -> Optional[int]:
        """The keyframe stride, None while it is still being chosen."""
        return self._stride

    def memory_counts(self) -> dict[str, int]:
        """Sizes of everything the stream holds: frames per structure and ``frames_with_tokens``, the number of
        distinct cached encoder outputs, bounded by window_radius + lookahead + 1 + register_group_size +
        buffer_size once the world exists (plus the stride prefix before), and ``frames_with_clip``, the
        frames' CLIP injection tokens (as many, with a CLIP runner; else 0)."""
        holders = [*self._prefix, *self._initial, *self._recent, *self._awaiting, *self._pending]
        tokens = {id(f.tokens) for f in holders if f.tokens is not None}
        tokens |= {id(s.tokens) for s in self._buffer.frames}
        clips = {id(f.clip) for f in holders if f.clip is not None}
        clips |= {id(s.clip) for s in self._buffer.frames if s.clip is not None}
        return {
            "frames_with_tokens": len(tokens),
            "frames_with_clip": len(clips),
            "prefix": len(self._prefix),
            "initial": len(self._initial),
            "recent": len(self._recent),
            "awaiting": len(self._awaiting),
            "pending": len(self._pending),
            "buffer": len(self._buffer.frames),
        }

    # ------------------------------------------------------------------------------------------------ input

    def push(
        self,
        rgb: np.ndarray,
        stamp: float,
        intrinsics: Optional[CameraIntrinsics] = None,
        clip_map: Optional[np.ndarray] = None,
    ) -> list[StreamedKeyframe]:
        """Feed the next camera image (H, W, 3) uint8 taken at ``stamp`` seconds, with its intrinsics when
        known (e.g. from CameraInfo; otherwise each keyframe's are estimated from its local pointmap).

        ``clip_map`` (H, W, clip_dim) float: the image's object-level CLIP map, required when the runner's
        ``clip_dim`` is not None and the frame will be used (:attr:`next_frame_used`; see
        ``segmentation.clip_map.object_clip_map``); frames off the keyframe stride need none.

        Returns the keyframes completed by this frame, oldest first (often none: keyframes wait for the
        initial window, their look-ahead and their registration group).
        """
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            raise ValueError(f"stamp must be a number of seconds, got {stamp!r}") from None
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        index, used = self._frame_count, self.next_frame_used
        self._check_clip_map(check_rgb(rgb), clip_map, used)
        if not used:
            self._frame_count += 1  # the image was still checked, so bad input fails on any frame
            return []
        prepared = prepare_image(rgb)
        known = None if intrinsics is None else image_to_model_intrinsics(intrinsics, prepared.box)
        clip = None if clip_map is None else self._clip_tokens(clip_map, prepared.box)
        self._frame_count += 1
        frame = _Frame(index, stamp, prepared.model_input, prepared.crop_rgb, prepared.box, known, clip=clip)
        if self._stride is None:
            self._prefix.append(frame)
            if len(self._prefix) < self.config.stride_prefix_frames:
                return []
            return self._choose_stride()
        return self._on_keyframe(frame)

    def flush(self) -> list[StreamedKeyframe]:
        """Finish everything that waits (end of a recording): choose the stride from the frames seen, build the
        world from fewer keyframes, run look-ahead windows short, register the partial group. A world needs at
        least 2 keyframes: a lone first keyframe keeps waiting for the next. The stream can go on afterwards."""
        out: list[StreamedKeyframe] = []
        if self._stride is None and self._prefix:
            out += self._choose_stride()
        if not self._initialised and len(self._initial) >= 2:
            out += self._initialise()
        while self._awaiting:
            out += self._localise(self._awaiting.popleft())
        if self._pending:
            out += self._register()
        return out

    @property
    def next_frame_index(self) -> int:
        """Index of the next pushed frame (StreamedKeyframe.frame_index counts the same way)."""
        return self._frame_count

    @property
    def next_frame_used(self) -> bool:
        """Whether the next pushed frame will be used (False for frames off a known keyframe stride), so callers
        can skip expensive per-frame work such as building its CLIP map."""
        return self._stride is None or self._frame_count % self._stride == 0

    def _check_clip_map(self, rgb: np.ndarray, clip_map: Optional[np.ndarray], used: bool) -> None:
        if self.clip_dim is None:
            if clip_map is not None:
                raise ValueError("this runner's I2P has no CLIP injection (clip_dim None): push without clip_map")
            return
        if clip_map is None:
            if not used:
                return
            raise ValueError(
                f"this runner's I2P has a CLIP injection (clip_dim {self.clip_dim}): every frame needs its "
                "object-level CLIP map, push(rgb, stamp, intrinsics, clip_map=object_clip_map(rgb, masks, clip))"
            )
        shape = (*rgb.shape[:2], self.clip_dim)
        is_float = isinstance(clip_map, np.ndarray) and np.issubdtype(clip_map.dtype, np.floating)
        if not is_float or clip_map.shape != shape:
            got = f"{clip_map.shape} {clip_map.dtype}" if isinstance(clip_map, np.ndarray) else type(clip_map).__name__
            raise ValueError(f"clip_map must be a float numpy array {shape} (the image's size, clip_dim channels), "
                             f"got {got}")

    @staticmethod
    def _clip_tokens(clip_map: np.ndarray, box: CropBox) -> torch.Tensor:
        tokens = clip_map_patch_tokens(clip_map, box)
        if not np.isfinite(tokens).all():
            raise ValueError("clip_map contains NaN or inf inside the model's crop")
        return torch.from_numpy(tokens)[None]

    # ------------------------------------------------------------------------------------------------ stages

    def _i2p(self, frames: Sequence[_Frame], ref_index: int) -> list[ViewPointmap]:
        """runner.i2p on the frames' tokens, with their CLIP tokens when the runner takes them."""
        tokens = [f.tokens for f in frames]
        if self.clip_dim is None:
            return self.runner.i2p(tokens, ref_index)
        return self.runner.i2p(tokens, ref_index, clip_features=[f.clip for f in frames])

    def _retrieval(self, candidates: Sequence[_SceneFrame], keys: Sequence[_Frame]) -> np.ndarray:
        """runner.retrieval of the keyframes against the candidates, with CLIP tokens when the runner takes them."""
        cand_tokens, key_tokens = [c.tokens for c in candidates], [k.tokens for k in keys]
        if self.clip_dim is None:
            return self.runner.retrieval(cand_tokens, key_tokens)
        return self.runner.retrieval(cand_tokens, key_tokens, clip_features=([c.clip for c in candidates],
                                                                             [k.clip for k in keys]))

    def _encode(self, frames: Sequence[_Frame]) -> None:
        todo = [f for f in frames if f.tokens is None]
        if not todo:
            return
        tokens = self.runner.encode(np.stack([f.image for f in todo]))
        if len(tokens) != len(todo):
            raise RuntimeError(f"runner.encode returned {len(tokens)} token handles for {len(todo)} images")
        for frame, handle in zip(todo, tokens):
            frame.tokens, frame.image = handle, None

    def _choose_stride(self) -> list[StreamedKeyframe]:
        """Pick the stride with the highest mean I2P confidence over its probe windows, then replay the prefix."""
        cfg, prefix = self.config, self._prefix
        self._prefix = []
        probes = probe_stride_windows(len(prefix), cfg.max_stride, cfg.stride_probe_views, cfg.stride_probe_windows)
        if not probes:  # a single frame: nothing to compare
            self._stride = 1
        else:
            self._encode([prefix[i] for i in sorted({i for ws in probes.values() for w in ws for i in w})])
            scores = {}
            for stride, windows in probes.items():
                confs = [
                    np.mean([v.conf.mean() for v in self._i2p([prefix[i] for i in w], len(w) // 2)])
                    for w in windows
                ]
                scores[stride] = float(np.mean(confs))
            self._stride = max(scores, key=lambda s: (scores[s], -s))
        out: list[StreamedKeyframe] = []
        for frame in prefix[:: self._stride]:
            out += self._on_keyframe(frame)
        return out

    def _on_keyframe(self, frame: _Frame) -> list[StreamedKeyframe]:
        frame.keyframe_id = self._keyframe_count
        self._keyframe_count += 1
        self._encode([frame])
        if not self._initialised:
            self._initial.append(frame)
            return self._initialise() if len(self._initial) >= self.config.initial_window else []
        return self._track(frame)

    def _track(self, frame: _Frame) -> list[StreamedKeyframe]:
        """Queue a keyframe after the world exists; localise the one whose look-ahead is now complete."""
        self._recent.append(frame)
        self._awaiting.append(frame)
        if len(self._awaiting) <= self.config.lookahead:
            return []
        return self._localise(self._awaiting.popleft())

    def _initialise(self) -> list[StreamedKeyframe]:
        """Build the world from the waiting initial keyframes; extra ones (after a fallback) are tracked."""
        cfg, frames = self.config, self._initial
        self._initial = []
        runs = self._reference_runs(frames)
        if max(r[0] for r in runs) < cfg.initial_min_confidence and len(frames) > cfg.initial_window_fallback:
            extra = frames[cfg.initial_window_fallback :]
            frames = frames[: cfg.initial_window_fallback]
            runs = self._reference_runs(frames)
        else:
            extra = []
        best = int(np.argmax([r[0] for r in runs]))
        views = runs[best][1]
        pts = np.stack([v.pts3d for v in views])
        conf = np.stack([v.conf for v in views])
        k = world_scale(pts, conf, cfg.i2p_min_confidence)
        out = []
        for i, frame in enumerate(frames):
            self._set_local(frame, runs[i][1][i])  # the run with this frame as reference: its own camera frame
            world = (pts[i] * np.float32(k)).astype(np.float32)
            valid = conf[i] > cfg.i2p_min_confidence
            # as in SLAM3R, L2W sees the initial world with unconfident points at the origin
            scene = np.where(valid[..., None], world, np.float32(0.0))
            out.append(self._finish(frame, world, conf[i], valid, None, scene))
        self._initialised = True
        self._recent.extend(frames)
        for frame in extra:  # arrived during initialisation but not used by it (after a fallback)
            out += self._track(frame)
        return out

    def _reference_runs(self, frames: Sequence[_Frame]) -> list[tuple[float, list[ViewPointmap]]]:
        """I2P on all ``frames`` once per reference: (mean confidence over all views, outputs) per reference."""
        runs = []
        for ref in range(len(frames)):
            views = self._i2p(frames, ref)
            runs.append((float(np.mean([v.conf.mean() for v in views])), views))
        return runs

    def _localise(self, frame: _Frame) -> list[StreamedKeyframe]:
        """I2P with ``frame`` as reference on its window of recent keyframes; queue it for registration."""
        cfg = self.config
        recent = list(self._recent)
        at = next(i for i, f in enumerate(recent) if f is frame)
        window = recent[max(0, at - cfg.window_radius) : at + cfg.lookahead + 1]
        ref = window.index(frame)
        if len(window) < 2:
            raise RuntimeError("internal error: an I2P window needs at least 2 keyframes")
        self._set_local(frame, self._i2p(window, ref)[ref])
        self._pending.append(frame)
        return self._register() if len(self._pending) >= cfg.register_group_size else []

    def _register(self) -> list[StreamedKeyframe]:
        """L2W on the pending keyframes against retrieved scene frames, then poses and the buffer update."""
        cfg, keys = self.config, self._pending
        self._pending = []
        candidates = self._buffer.frames
        if len(candidates) > cfg.num_scene_frames:
            scores = self._retrieval(candidates, keys)
            expected = (len(candidates), len(keys))
            if np.shape(scores)[:2] != expected:
                raise RuntimeError(f"runner.retrieval returned shape {np.shape(scores)}, expected {expected} + (196,)")
            candidates = [candidates[i] for i in rank_scene_frames(scores, cfg.num_scene_frames)]
        # SLAM3R's L2W input: the normalised local pointmap with unconfident points at the origin
        unsure = [k.local_conf[..., None] <= cfg.i2p_min_confidence for k in keys]
        key_pts = np.stack([np.where(u, np.float32(0.0), k.local_pts) for u, k in zip(unsure, keys)])
        scene_pts = np.stack([c.world_pts for c in candidates])
        registrations = self.runner.l2w([c.tokens for c in candidates], scene_pts, [k.tokens for k in keys], key_pts)
        if len(registrations) != len(keys):
            raise RuntimeError(f"runner.l2w returned {len(registrations)} registrations for {len(keys)} keyframes")
        out = []
        for frame, reg in zip(keys, registrations):
            keep = (reg.conf > cfg.l2w_min_confidence) & (frame.local_conf > cfg.i2p_min_confidence)
            out.append(self._finish(frame, reg.pts3d, reg.conf, keep, reg.features, reg.pts3d))
        return out

    def _set_local(self, frame: _Frame, own: ViewPointmap) -> None:
        """Keep a keyframe's local pointmap, scaled so that its confident points lie at mean distance 1."""
        k = world_scale(own.pts3d[None], own.conf[None], self.config.i2p_min_confidence)
        frame.local_pts, frame.local_conf = (own.pts3d * np.float32(k)).astype(np.float32), own.conf

    def _finish(
        self,
        frame: _Frame,
        world: np.ndarray,
        conf: np.ndarray,
        keep: np.ndarray,
        features: Optional[np.ndarray],
        scene_pts: np.ndarray,
    ) -> StreamedKeyframe:
        """Pose, intrinsics and the output Keyframe of a keyframe whose world pointmap is known; buffer it with
        ``scene_pts``, the dense world pointmap L2W will condition on when it is a scene frame."""
        cfg = self.config
        local_ok = frame.local_conf > cfg.i2p_min_confidence
        fit = recover_pose(
            frame.local_pts,
            world,
            weights=conf * frame.local_conf,
            valid=keep & local_ok,
            max_points=cfg.max_fit_points,
            seed=cfg.seed + frame.keyframe_id,
        )
        intrinsics, source = self._model_intrinsics(frame, np.where(local_ok, frame.local_conf, 0.0))
        pointmap = np.where(keep[..., None], world, np.float32(np.nan)).astype(np.float32)
        keyframe = Keyframe(
            keyframe_id=frame.keyframe_id,
            stamp=frame.stamp,
            rgb=frame.crop_rgb,
            intrinsics=model_to_crop_intrinsics(intrinsics, frame.box),
            pose=fit.T_world_camera,
            pointmap=pointmap,
            confidence=conf.astype(np.float32),
            metric_scale=False,
            feature_map=None if features is None else np.ascontiguousarray(features.transpose(2, 0, 1)),
        )
        self._buffer.offer(_SceneFrame(frame.keyframe_id, frame.tokens, frame.clip, scene_pts.astype(np.float32)))
        # the local pointmap is needed no more; tokens stay while a window or the buffer holds the frame
        frame.local_pts = frame.local_conf = None
        return StreamedKeyframe(keyframe, frame.frame_index, fit.scale, fit.residual, source)

    def _model_intrinsics(self, frame: _Frame, weights: np.ndarray) -> tuple[CameraIntrinsics, str]:
        """The keyframe's model-input intrinsics and their source (see :class:`StreamedKeyframe`)."""
        if frame.known_intrinsics is not None:
            return frame.known_intrinsics, "given"
        try:
            estimate = estimate_intrinsics(frame.local_pts, weights)
        except ValueError:
            estimate = None
        # a field of view outside 10..170 degrees means the pointmap is not a camera's (untrained network)
        focal_range = (MODEL_SIZE / 2.0) / np.tan(np.radians([85.0, 5.0]))
        if estimate is not None and focal_range[0] <= estimate.fx <= focal_range[1]:
            self._last_estimate = estimate
            return estimate, "estimated"
        if self._last_estimate is not None:
            return self._last_estimate, "previous"
        centre = (MODEL_SIZE - 1) / 2.0
        focal = self.config.fallback_focal
        return CameraIntrinsics(focal, focal, centre, centre, MODEL_SIZE, MODEL_SIZE), "fallback"
