"""The CLIP3R runner interface: what the streaming reconstruction calls, its result types and the input checks
every runner shares.

Token handles are opaque to callers: whatever ``encode`` returns for one image (e.g. a device tensor (1, S, C)),
passed back unchanged. Everything else crosses the interface as float32 numpy on the host.
Shapes: S patches (196), C = enc_dim, H = W = img_size (224).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional, Protocol

import numpy as np


class ViewPointmap(NamedTuple):
    """One view's I2P output: ``pts3d`` (H, W, 3) float32 in the reference camera frame, ``conf`` (H, W) >= 1."""

    pts3d: np.ndarray
    conf: np.ndarray


class Registration(NamedTuple):
    """L2W output for one keyframe: world ``pts3d`` (H, W, 3), ``conf`` (H, W), and CLIP3R ``features``
    (g, g, clip_dim) when the L2W has a CLIP head, else None; all float32."""

    pts3d: np.ndarray
    conf: np.ndarray
    features: Optional[np.ndarray]


class Clip3rRunner(Protocol):
    """How the stream calls the CLIP3R networks, whatever runs them (:class:`~.runner.EngineRunner` on any
    backend, or a test double). Runners may take further optional arguments (patch masks).

    ``clip_dim``: the channels of the I2P's CLIP injection input, None when it has none (callers treat a
    runner without the attribute as None). With an injection, ``i2p`` and ``retrieval`` require
    ``clip_features``: per view a (1, N, clip_dim) float32 tensor (N = 196 pooled F_oCLIP patch tokens).
    """

    clip_dim: Optional[int]

    def encode(self, images: np.ndarray) -> list[Any]:
        """images (B, 3, H, W) float32 in [-1, 1] -> B token handles, one per image."""
        ...

    def i2p(self, tokens: Sequence[Any], ref_index: int, clip_features: Optional[Sequence[Any]] = None
            ) -> list[ViewPointmap]:
        """I2P on a window of V >= 2 views -> V pointmaps in input order, all in the reference camera frame."""
        ...

    def retrieval(
        self,
        candidates: Sequence[Any],
        sources: Sequence[Any],
        clip_features: Optional[tuple[Sequence[Any], Sequence[Any]]] = None,
    ) -> np.ndarray:
        """Retrieval scores (R, K, S) float32 >= 1: for each of R candidate scene frames, I2P's retrieval head
        on the window [candidate (reference), K sources] (decoder run to ``corr_depth``); ``clip_features``
        (candidates' CLIP tokens, sources' CLIP tokens) with an injection."""
        ...

    def l2w(
        self, scene_tokens: Sequence[Any], scene_pts3d: np.ndarray, key_tokens: Sequence[Any], key_pts3d: np.ndarray
    ) -> list[Registration]:
        """Register K keyframes (local pointmaps (K, H, W, 3)) into the world of R scene frames (world
        pointmaps (R, H, W, 3)); returns K registrations in order."""
        ...


def check_model_images(images: object, img_size: int) -> np.ndarray:
    """images must be finite float32 numpy (B >= 1, 3, img_size, img_size) scaled to [-1, 1]; returns them."""
    shape = f"(B >= 1, 3, {img_size}, {img_size})"
    if not isinstance(images, np.ndarray) or images.dtype != np.float32:
        kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"images must be a float32 numpy array {shape}, got {kind}")
    if images.ndim != 4 or images.shape[1:] != (3, img_size, img_size) or len(images) == 0:
        raise ValueError(f"images must have shape {shape} (use prepare_image), got {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError("images contain NaN or inf")
    # a small tolerance: resampling and normalisation round a little past the ends
    if images.min() < -1.0001 or images.max() > 1.0001:
        raise ValueError(f"images must be scaled to [-1, 1], got range [{images.min()}, {images.max()}]")
    return images


def check_pointmaps(name: str, pointmaps: object, count: int, img_size: int) -> np.ndarray:
    """pointmaps must be a finite numpy array (count, img_size, img_size, 3); returns them."""
    shape = (count, img_size, img_size, 3)
    if not isinstance(pointmaps, np.ndarray) or pointmaps.shape != shape:
        got = pointmaps.shape if isinstance(pointmaps, np.ndarray) else type(pointmaps).__name__
        raise ValueError(f"{name} must be a numpy array {shape}, got {got}")
    if not np.isfinite(pointmaps).all():
        raise ValueError(f"{name} contain NaN or inf: L2W needs dense pointmaps (keep the unmasked network output)")
    return pointmaps
