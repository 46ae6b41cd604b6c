"""ViT-L/16 image encoder pieces: patch embedding and the encoder block stack.

The modules live directly on the I2P model (``patch_embed``, ``enc_blocks``, ``enc_norm``) so that parameter
names match the SLAM3R checkpoints; this file provides them and the function that runs them.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import EncoderBlock
from .config import Clip3RConfig


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: Conv2d(3, dim, patch, stride=patch), tokens in row-major order."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> tokens (B, (H / patch) * (W / patch), dim)."""
        return self.proj(images).flatten(2).transpose(1, 2)


def build_encoder_blocks(config: Clip3RConfig) -> nn.ModuleList:
    """The ``enc_depth`` pre-norm ViT blocks of the encoder."""
    return nn.ModuleList(
        EncoderBlock(config.enc_dim, config.enc_heads, config.mlp_ratio) for _ in range(config.enc_depth)
    )


def run_encoder(
    patch_embed: PatchEmbed, blocks: nn.ModuleList, images: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """images (B, 3, H, W) in [-1, 1] -> raw (un-normalised) encoder tokens (B, S, enc_dim).

    ``cos`` / ``sin``: RoPE tables (S, enc_dim / enc_heads) of the patch grid.
    """
    x = patch_embed(images)
    for block in blocks:
        x = block(x, cos, sin)
    return x
