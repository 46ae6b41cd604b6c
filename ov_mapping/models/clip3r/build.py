"""Public builders of the CLIP3R networks."""

from __future__ import annotations

from .config import Clip3RConfig, get_config
from .i2p import I2P
from .l2w import L2W


def _build(cls: type[I2P] | type[L2W], config: str | Clip3RConfig, clip_dim: int | None) -> I2P | L2W:
    if clip_dim is not None and (isinstance(clip_dim, bool) or not isinstance(clip_dim, int) or clip_dim <= 0):
        raise ValueError(f"clip_dim must be None or a positive int, got {clip_dim!r}")
    return cls(get_config(config), clip_dim=clip_dim).eval()


def build_i2p(config: str | Clip3RConfig = "slam3r_i2p", clip_dim: int | None = None) -> I2P:
    """I2P in eval mode; ``clip_dim`` adds the zero-initialised CLIP injection (e.g. 1152 for SigLIP SO400M)."""
    return _build(I2P, config, clip_dim)


def build_l2w(config: str | Clip3RConfig = "slam3r_l2w", clip_dim: int | None = None) -> L2W:
    """L2W in eval mode; ``clip_dim`` adds the CLIP3R feature head."""
    return _build(L2W, config, clip_dim)
