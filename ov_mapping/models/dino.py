"""DINO ViT-S/16 patch features (timm), and area-weighted pooling of any patch grid under masks.

The model is timm's ``vit_small_patch16_224.dino`` architecture (weights: registry entry ``dino_vits16``, or a
local file in timm's or the original DINO key layout). It runs with ``dynamic_img_size`` so an image keeps its
aspect ratio: the short side is scaled to ``input_short_side`` and both sides rounded to whole patches.

:func:`mask_coverage` and :func:`pool_patch_features` are plain numpy and work for any feature grid
(DINO patches, CLIP3R feature maps, pointmaps).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import checkpoint_filter_fn

from ov_mapping.models.clip import CheckpointError, describe_key_mismatch
from ov_mapping.models.registry import downloaded_path

DINO_ARCHITECTURE = "vit_small_patch16_224.dino"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_COVERAGE_CHUNK = 16


def build_dino(architecture: str = DINO_ARCHITECTURE, **overrides: Any) -> torch.nn.Module:
    """An untrained timm ViT without classifier, accepting any image size (multiple of the patch size).

    ``overrides`` are timm ``VisionTransformer`` arguments (e.g. ``embed_dim``, ``depth``, ``num_heads``,
    ``img_size`` for a small test model of the same architecture).
    """
    base = architecture.split(".")[0]
    known = timm.list_models()
    if base not in known:
        close = difflib.get_close_matches(base, known, n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown timm architecture {architecture!r}.{hint}")
    try:
        model = timm.create_model(architecture, pretrained=False, num_classes=0, dynamic_img_size=True, **overrides)
    except TypeError as exc:
        raise ValueError(f"invalid overrides for {architecture}: {exc}") from exc
    return model.eval()


def load_dino_state_dict(model: torch.nn.Module, checkpoint_path: Union[str, os.PathLike]) -> None:
    """Load a ViT checkpoint (.safetensors or torch file) strictly; a classifier head, if present, is dropped."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"DINO checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict = load_file(str(path), device="cpu")
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read DINO checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    for wrapper in ("state_dict", "model", "teacher"):
        if isinstance(state_dict, dict) and isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"DINO checkpoint {path} holds a {type(state_dict).__name__}, not a state dict")
    # The original DINO release prefixes "module."/"backbone." and ships a head we do not use.
    state_dict = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state_dict.items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
    # timm's converter maps other ViT layouts to timm names and resizes pos_embed to the model's grid.
    state_dict = checkpoint_filter_fn(state_dict, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(describe_key_mismatch(f"DINO checkpoint {path}", missing, unexpected))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"DINO checkpoint {path} does not fit the architecture: {exc}") from exc


class DinoModel:
    """Dense DINO patch features of RGB images, numpy in and out.

    Args:
        model: a timm ViT built by :func:`build_dino`.
        device: where inference runs.
        input_short_side: the image's short side is scaled to this many pixels (224: DINO's training scale).
    """

    def __init__(self, model: torch.nn.Module, device: Union[str, torch.device] = "cpu",
                 input_short_side: int = 224) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.patch_size = int(model.patch_embed.patch_size[0])
        if input_short_side < self.patch_size:
            raise ValueError(f"input_short_side must be at least one patch ({self.patch_size}), got {input_short_side}")
        self.input_short_side = input_short_side
        self.feature_dim = int(model.embed_dim)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, checkpoint_path: Union[str, os.PathLike], architecture: str = DINO_ARCHITECTURE,
                        device: Union[str, torch.device] = "cpu", input_short_side: int = 224,
                        **overrides: Any) -> "DinoModel":
        model = build_dino(architecture, **overrides)
        load_dino_state_dict(model, checkpoint_path)
        return cls(model, device, input_short_side)

    @classmethod
    def from_registry(cls, weights_name: str = "dino_vits16", cache_dir: Optional[os.PathLike] = None,
                      device: Union[str, torch.device] = "cpu", input_short_side: int = 224) -> "DinoModel":
        _, path = downloaded_path(weights_name, "dino", cache_dir)
        return cls.from_checkpoint(path, DINO_ARCHITECTURE, device, input_short_side)

    def input_grid(self, height: int, width: int) -> tuple[int, int]:
        """The patch grid (h, w) an image of ``height`` x ``width`` pixels is encoded on."""
        scale = self.input_short_side / min(height, width)
        return (max(1, round(height * scale / self.patch_size)), max(1, round(width * scale / self.patch_size)))

    @torch.inference_mode()
    def patch_features(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w, C) float32 patch features of ``rgb`` (H, W, 3) uint8; grid from :meth:`input_grid`."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) == 0:
            raise ValueError(f"rgb must be a non-empty (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        gh, gw = self.input_grid(*rgb.shape[:2])
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(gh * self.patch_size, gw * self.patch_size), mode="bicubic",
                          antialias=True, align_corners=False).clamp_(0.0, 1.0)
        tokens = self.model.forward_features((x - self._mean) / self._std)
        patches = tokens[0, self.model.num_prefix_tokens:]
        return patches.reshape(gh, gw, -1).float().cpu().numpy()


def mask_coverage(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each grid cell covered by each mask.

    Args:
        masks: (M, H, W) bool.
        grid: (h, w) cells laid over the image (cell (i, j) spans rows i*H/h .. (i+1)*H/h).
    Returns:
        (M, h, w) float32 in [0, 1]. A grid finer than the masks is handled by repeating mask pixels first.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.dtype != bool:
        raise ValueError(f"masks must be (M, H, W) bool, got {masks.shape} {masks.dtype}")
    h, w = int(grid[0]), int(grid[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"grid must be positive, got {grid}")
    M, H, W = masks.shape
    if M == 0 or H == 0 or W == 0:
        return np.zeros((M, h, w), np.float32)
    ry, rx = -(-h // H), -(-w // W)  # ceil: every cell must own at least one pixel
    H2, W2 = H * ry, W * rx
    row_starts = np.searchsorted(np.arange(H2) * h // H2, np.arange(h))
    col_starts = np.searchsorted(np.arange(W2) * w // W2, np.arange(w))
    counts = np.diff(np.append(row_starts, H2))[:, None] * np.diff(np.append(col_starts, W2))[None, :]
    out = np.empty((M, h, w), np.float32)
    for start in range(0, M, _COVERAGE_CHUNK):  # chunks bound the float copy of full-resolution masks
        m = masks[start:start + _COVERAGE_CHUNK].astype(np.float32)
        if ry > 1 or rx > 1:
            m = m.repeat(ry, axis=1).repeat(rx, axis=2)
        sums = np.add.reduceat(np.add.reduceat(m, row_starts, axis=1), col_starts, axis=2)
        out[start:start + _COVERAGE_CHUNK] = sums / counts
    return out


def pool_patch_features(features: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Area-weighted mean of a feature grid under each mask, L2-normalised.

    Args:
        features: (h, w, C) float feature grid covering the whole image.
        masks: (M, H, W) bool image-resolution masks.
    Returns:
        (M, C) float32; each cell weighs by the fraction of it the mask covers. A row is zero when its
        mask is empty or its features are all zero/non-finite.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 3:
        raise ValueError(f"features must be (h, w, C), got {features.shape}")
    h, w, C = features.shape
    weights = mask_coverage(masks, (h, w)).reshape(len(masks), h * w)
    flat = np.nan_to_num(features.reshape(h * w, C), nan=0.0, posinf=0.0, neginf=0.0)
    total = weights.sum(axis=1, keepdims=True)
    pooled = (weights @ flat) / np.maximum(total, 1e-12)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.where(norms > 1e-12, pooled / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
