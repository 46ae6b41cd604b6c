"""Prediction heads: the linear pointmap + confidence head, and CLIP3R's feature head."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Mlp


def points_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """DUSt3R's 'exp' depth mode: xyz / |xyz| * expm1(|xyz|). raw (..., 3) -> points (..., 3)."""
    dist = raw.norm(dim=-1, keepdim=True)
    # The clamp keeps a zero vector at zero instead of producing NaN.
    return raw / dist.clamp(min=1e-8) * torch.expm1(dist)


def conf_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """DUSt3R's 'exp' confidence mode with minimum 1: 1 + exp(raw). Same shape as ``raw``."""
    return 1.0 + raw.exp()


class LinearPts3dHead(nn.Module):
    """Linear(dim -> 4 * patch^2) per token, pixel shuffle by ``patch``: 3 point channels + 1 confidence channel."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(dim, 4 * patch_size**2)

    def forward(self, tokens: torch.Tensor, grid_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (..., grid^2, dim) -> points (..., H, W, 3), confidence (..., H, W); H = W = grid * patch."""
        raw = _pixel_shuffle_channels_last(self.proj(tokens), grid_size, self.patch_size)  # (..., H, W, 4)
        return points_from_raw(raw[..., :3]), conf_from_raw(raw[..., 3])


def _pixel_shuffle_channels_last(feat: torch.Tensor, grid_size: int, patch: int) -> torch.Tensor:
    """Per-token features (..., g*g, C*p*p) -> image (..., g*p, g*p, C), exactly F.pixel_shuffle's layout.

    Channel c*p*p + i*p + j of token (h, w) goes to pixel (h*p + i, w*p + j). Written with reshapes and one
    permute because ONNX export of pixel_shuffle only supports 4D inputs and the views here are 5D.
    """
    lead = feat.ndim - 2
    x = feat.unflatten(-2, (grid_size, grid_size)).unflatten(-1, (-1, patch, patch))  # (..., gh, gw, C, pi, pj)
    x = x.permute(*range(lead), lead, lead + 3, lead + 1, lead + 4, lead + 2)  # (..., gh, pi, gw, pj, C)
    return x.flatten(lead, lead + 1).flatten(lead + 1, lead + 2)


class ClipFeatureHead(nn.Module):
    """CLIP3R feature head of L2W: per-patch MLP from the final decoder tokens to the CLIP feature space.

    Ov3R describes a DPT head at full resolution; this head predicts at patch resolution (14 x 14), which is
    what per-segment pooling needs, at a fraction of the size. It reads the decoder output and never feeds
    back, so the geometry is unaffected.
    """

    def __init__(self, dim: int, clip_dim: int) -> None:
        super().__init__()
        self.mlp = Mlp(dim, dim, clip_dim)

    def forward(self, tokens: torch.Tensor, grid_size: int) -> torch.Tensor:
        """tokens (..., grid^2, dim) -> CLIP3R features (..., grid, grid, clip_dim)."""
        return self.mlp(tokens).unflatten(-2, (grid_size, grid_size))
