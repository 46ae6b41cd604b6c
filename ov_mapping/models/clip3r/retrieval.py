"""Scene-frame retrieval head of I2P: ``corr_score_norm`` + ``corr_score_proj`` on shallow decoder features."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Mlp


def build_corr_score_layers(dim: int) -> tuple[nn.LayerNorm, Mlp]:
    """LayerNorm(dim) (PyTorch's default eps 1e-5, as in SLAM3R) and MLP dim -> dim -> 1 with GELU."""
    return nn.LayerNorm(dim), Mlp(dim, dim, 1)


def corr_logits(norm: nn.LayerNorm, proj: Mlp, features: torch.Tensor) -> torch.Tensor:
    """Decoder features (..., S, dim) -> raw per-patch retrieval logits (..., S)."""
    return proj(norm(features))[..., 0]


def score_from_logit(logit: torch.Tensor) -> torch.Tensor:
    """Retrieval score 1 + exp(logit), >= 1; same shape as ``logit``."""
    return 1.0 + logit.exp()
