"""2D rotary position embedding (RoPE, base 100) in plain PyTorch.

Convention of CroCo / DUSt3R / SLAM3R: a head's channels are split in two halves; the first half is rotated by
the token's row ``y``, the second by its column ``x``. Inside each half the rotate-half convention applies with
``inv_freq[i] = 1 / base**(2i / D)``, ``D`` = half the head dimension. Positions are integer grid coordinates
starting at 0. Tables are computed from integer positions with elementwise ops only (no custom CUDA kernel), so
the whole thing traces and exports to ONNX (Cos / Sin / Mul / Concat).
"""

from __future__ import annotations

import torch


def patch_grid_positions(grid_h: int, grid_w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer (y, x) coordinates of a row-major patch grid: (grid_h * grid_w, 2) int64, y varying slowest."""
    if grid_h <= 0 or grid_w <= 0:
        raise ValueError(f"grid size must be positive, got {grid_h}x{grid_w}")
    ys = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    xs = torch.arange(grid_w, device=device).repeat(grid_h)
    return torch.stack((ys, xs), dim=-1)


def _axis_angles(coords: torch.Tensor, half_dim: int, base: float) -> torch.Tensor:
    """Angles (S, half_dim) of one axis: [coords * inv_freq, coords * inv_freq] (rotate-half layout)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, half_dim, 2, device=coords.device).float() / half_dim))
    angles = coords.float()[:, None] * inv_freq[None, :]
    return torch.cat((angles, angles), dim=-1)


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (S, head_dim) float32, for integer (y, x) ``positions`` of shape (S, 2)."""
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must be (S, 2) integer (y, x), got shape {tuple(positions.shape)}")
    if head_dim <= 0 or head_dim % 4:
        raise ValueError(f"2D RoPE needs a head dimension divisible by 4, got {head_dim}")
    half = head_dim // 2
    angles = torch.cat((_axis_angles(positions[:, 0], half, base), _axis_angles(positions[:, 1], half, base)), dim=-1)
    return angles.cos(), angles.sin()


def _rotate_half_per_axis(x: torch.Tensor) -> torch.Tensor:
    """Rotate-half applied separately to the y half and the x half: [a, b, c, d] -> [-b, a, -d, c]."""
    a, b, c, d = x.chunk(4, dim=-1)
    return torch.cat((-b, a, -d, c), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` (..., S, head_dim) with tables (S, head_dim) from :func:`rope_tables`."""
    if x.shape[-2:] != cos.shape or cos.shape != sin.shape:
        raise ValueError(f"RoPE tables {tuple(cos.shape)} do not fit tokens {tuple(x.shape)}")
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    return x * cos + _rotate_half_per_axis(x) * sin
