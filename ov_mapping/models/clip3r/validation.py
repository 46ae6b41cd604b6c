"""Entry checks of the CLIP3R networks' public methods: clear ValueErrors instead of failures deep in torch."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _describe(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"


def check_images(images: object, img_size: int) -> None:
    """images must be a floating tensor (B, 3, img_size, img_size)."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor (B, 3, {img_size}, {img_size}), got {_describe(images)}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, img_size, img_size):
        raise ValueError(
            f"images must be (B, 3, {img_size}, {img_size}) scaled to [-1, 1] (resize + centre-crop first), "
            f"got {_describe(images)}"
        )


def check_token_list(tokens: object, name: str, num_patches: int, dim: int, min_views: int) -> int:
    """tokens must be a list of >= min_views floating tensors (B, num_patches, dim) with one B; returns B."""
    if not isinstance(tokens, Sequence) or isinstance(tokens, torch.Tensor):
        raise ValueError(f"{name} must be a list of (B, {num_patches}, {dim}) tensors, got {_describe(tokens)}")
    if len(tokens) < min_views:
        raise ValueError(f"{name} needs at least {min_views} view(s), got {len(tokens)}")
    for i, t in enumerate(tokens):
        if not isinstance(t, torch.Tensor) or t.ndim != 3 or tuple(t.shape[1:]) != (num_patches, dim):
            raise ValueError(f"{name}[{i}] must be (B, {num_patches}, {dim}) raw encoder tokens, got {_describe(t)}")
    batch = tokens[0].shape[0]
    if any(t.shape[0] != batch for t in tokens):
        raise ValueError(f"{name}: all views must share one batch size, got {[t.shape[0] for t in tokens]}")
    return batch


def check_pointmap_list(pointmaps: object, name: str, count: int, batch: int, img_size: int) -> None:
    """pointmaps must be a list of ``count`` floating tensors (batch, img_size, img_size, 3)."""
    expected = (batch, img_size, img_size, 3)
    if not isinstance(pointmaps, Sequence) or len(pointmaps) != count:
        raise ValueError(f"{name} must be a list of {count} pointmaps {expected}, got {_describe(pointmaps)}")
    for i, p in enumerate(pointmaps):
        if not isinstance(p, torch.Tensor) or not p.is_floating_point() or tuple(p.shape) != expected:
            raise ValueError(f"{name}[{i}] must be a floating pointmap {expected}, got {_describe(p)}")


def patch_masks_or_none(masks: object, name: str, count: int, batch: int, grid_size: int) -> list[torch.Tensor] | None:
    """masks: None or a list of ``count`` bool tensors (batch, grid^2) or (batch, grid, grid), True = masked.

    Returns them flattened to (batch, grid^2), or None.
    """
    if masks is None:
        return None
    if not isinstance(masks, Sequence) or len(masks) != count:
        raise ValueError(f"{name} must be None or a list of {count} bool patch masks, got {_describe(masks)}")
    out = []
    shapes = ((batch, grid_size * grid_size), (batch, grid_size, grid_size))
    for i, m in enumerate(masks):
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) not in shapes:
            dtype = f" dtype {m.dtype}" if isinstance(m, torch.Tensor) else ""
            raise ValueError(
                f"{name}[{i}] must be a bool patch mask {shapes[0]} or {shapes[1]} with True = masked, "
                f"got {_describe(m)}{dtype}"
            )
        out.append(m.reshape(shapes[0]))
    return out


def check_clip_list(clip_features: object, count: int, batch: int, clip_dim: int) -> None:
    """clip_features must be a list of ``count`` tensors (batch, N, clip_dim) sharing one N."""
    if not isinstance(clip_features, Sequence) or len(clip_features) != count:
        raise ValueError(
            f"clip_features must be a list of {count} tensors (B, N, {clip_dim}), one per view, got {_describe(clip_features)}"
        )
    for i, c in enumerate(clip_features):
        if not isinstance(c, torch.Tensor) or c.ndim != 3 or c.shape[0] != batch or c.shape[2] != clip_dim:
            raise ValueError(f"clip_features[{i}] must be ({batch}, N, {clip_dim}), got {_describe(c)}")
    if len({c.shape[1] for c in clip_features}) > 1:
        raise ValueError(f"clip_features must share one token count N, got {[c.shape[1] for c in clip_features]}")


def check_view_index(index: object, num_views: int, name: str) -> int:
    """index must be an int in [0, num_views)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_views:
        raise ValueError(f"{name} must be an int in [0, {num_views}), got {index!r}")
    return index
