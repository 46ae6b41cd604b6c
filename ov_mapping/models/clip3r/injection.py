"""Ov3R's CLIP injection between the I2P encoder and decoder.

F_fuse = F_ViT + W_o softmax(q(F_ViT) k(F_oCLIP)^T / sqrt(d)) v(F_oCLIP), single head, d = ViT width.
``W_o`` (``out``) starts at zero, so a model without trained CLIP3R weights reproduces SLAM3R exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ClipInjection(nn.Module):
    """Cross-attention from ViT tokens to object-level CLIP tokens, residual, zero-initialised output."""

    def __init__(self, vit_dim: int, clip_dim: int) -> None:
        super().__init__()
        self.clip_dim = clip_dim
        self.clip_norm = nn.LayerNorm(clip_dim)
        self.q = nn.Linear(vit_dim, vit_dim)
        self.k = nn.Linear(clip_dim, vit_dim)
        self.v = nn.Linear(clip_dim, vit_dim)
        self.out = nn.Linear(vit_dim, vit_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor, clip_tokens: torch.Tensor) -> torch.Tensor:
        """tokens (..., S, vit_dim), clip_tokens (..., N, clip_dim) with the same leading dims -> (..., S, vit_dim)."""
        if clip_tokens.shape[-1] != self.clip_dim:
            raise ValueError(f"CLIP features have {clip_tokens.shape[-1]} channels, the injection expects {self.clip_dim}")
        if clip_tokens.shape[:-2] != tokens.shape[:-2]:
            raise ValueError(
                f"CLIP features {tuple(clip_tokens.shape)} and ViT tokens {tuple(tokens.shape)} differ in leading dims"
            )
        clip_tokens = self.clip_norm(clip_tokens)
        fused = F.scaled_dot_product_attention(self.q(tokens), self.k(clip_tokens), self.v(clip_tokens))
        return tokens + self.out(fused)


def pool_feature_map_to_patches(feature_map: torch.Tensor, patch_size: int = 16) -> torch.Tensor:
    """Average a per-pixel feature map (B, H, W, C) over patches -> patch tokens (B, (H/p) * (W/p), C).

    This turns Ov3R's object-level CLIP map F_oCLIP (mask embeddings written into mask pixels) into the
    token sequence :class:`ClipInjection` attends to.
    """
    if feature_map.ndim != 4:
        raise ValueError(f"feature map must be (B, H, W, C), got shape {tuple(feature_map.shape)}")
    height, width = feature_map.shape[1:3]
    if height % patch_size or width % patch_size:
        raise ValueError(f"feature map size {height}x{width} is not a multiple of the patch size {patch_size}")
    pooled = F.avg_pool2d(feature_map.permute(0, 3, 1, 2), kernel_size=patch_size)  # (B, C, H/p, W/p)
    return pooled.flatten(2).transpose(1, 2)
