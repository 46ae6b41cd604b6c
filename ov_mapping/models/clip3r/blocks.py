"""Transformer building blocks of the CLIP3R encoder and multi-view decoder.

Attribute names (``norm1``, ``attn.qkv``, ``cross_attn.projq`` ...) are those of the SLAM3R checkpoints.
Attention uses ``torch.nn.functional.scaled_dot_product_attention`` with RoPE applied to q and k beforehand.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .rope import apply_rope

LAYER_NORM_EPS = 1e-6


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(..., S, C) -> (..., num_heads, S, C // num_heads)."""
    # Only the channel axis is reshaped, so leading sizes stay symbolic when traced for export.
    return x.unflatten(-1, (num_heads, -1)).transpose(-3, -2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., num_heads, S, Dh) -> (..., S, num_heads * Dh)."""
    return x.transpose(-3, -2).flatten(-2)


class Mlp(nn.Module):
    """fc1 -> GELU (exact) -> fc2."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, in_dim if out_dim is None else out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (N, S, C), RoPE tables (S, C // num_heads) -> (N, S, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = apply_rope(_split_heads(q, self.num_heads), cos, sin)
        k = apply_rope(_split_heads(k, self.num_heads), cos, sin)
        out = F.scaled_dot_product_attention(q, k, _split_heads(v, self.num_heads))
        return self.proj(_merge_heads(out))


class CrossAttention(nn.Module):
    """Every query view attends to every key view separately; one output per (query view, key view) pair."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """xs (Vx, B, S, C) queries, ys (Vy, B, S, C) keys/values -> (Vx, Vy, B, S, C), after ``proj``."""
        # Read straight from .shape and reused only in expand / unflatten: stays symbolic in traced ONNX exports.
        vx, vy = xs.shape[0], ys.shape[0]
        # Projections are computed once per view, then paired: cheaper than projecting Vx * Vy copies.
        q = apply_rope(_split_heads(self.projq(xs), self.num_heads), cos, sin)  # (Vx, B, H, S, Dh)
        k = apply_rope(_split_heads(self.projk(ys), self.num_heads), cos, sin)  # (Vy, B, H, S, Dh)
        v = _split_heads(self.projv(ys), self.num_heads)
        # Flattened to 4D (Vx * Vy * B, H, S, Dh): the layout every SDPA backend and exporter accepts.
        q = q.unsqueeze(1).expand(-1, vy, -1, -1, -1, -1).flatten(0, 2)
        k = k.unsqueeze(0).expand(vx, -1, -1, -1, -1, -1).flatten(0, 2)
        v = v.unsqueeze(0).expand(vx, -1, -1, -1, -1, -1).flatten(0, 2)
        out = self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return out.unflatten(0, (vx, vy, -1))


class EncoderBlock(nn.Module):
    """Pre-norm ViT block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (N, S, C) -> (N, S, C)."""
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class MultiviewDecoderBlock(nn.Module):
    """SLAM3R's ``MultiviewDecoderBlock_max``.

    Each view of one side runs self-attention, then cross-attends to every view of the other side (partner
    tokens normalised by ``norm_y``); the per-partner results (after ``cross_attn.proj``) are merged by an
    element-wise max over partners, added residually, followed by ``norm3`` + MLP.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.norm_y = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Refine xs (Vx, B, S, C) using partners ys (Vy, B, S, C) -> (Vx, B, S, C)."""
        xs = xs + self.attn(self.norm1(xs).flatten(0, 1), cos, sin).reshape_as(xs)
        per_partner = self.cross_attn(self.norm2(xs), self.norm_y(ys), cos, sin)  # (Vx, Vy, B, S, C)
        xs = xs + per_partner.amax(dim=1)
        return xs + self.mlp(self.norm3(xs))
