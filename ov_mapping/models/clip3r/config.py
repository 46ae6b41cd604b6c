"""Named architecture configurations of the CLIP3R (SLAM3R I2P / L2W) networks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Clip3RConfig:
    """Architecture hyper-parameters shared by I2P and L2W.

    ``enc_depth`` is ignored by L2W, which has no encoder blocks of its own.
    """

    enc_dim: int
    enc_depth: int
    enc_heads: int
    dec_dim: int
    dec_depth: int
    dec_heads: int
    mlp_ratio: int = 4
    img_size: int = 224
    patch_size: int = 16
    rope_base: float = 100.0
    corr_depth: int = 2

    def __post_init__(self) -> None:
        for name in ("enc_dim", "enc_heads", "dec_dim", "dec_depth", "dec_heads", "patch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Clip3RConfig.{name} must be positive, got {getattr(self, name)}")
        if self.enc_depth < 0:
            raise ValueError(f"Clip3RConfig.enc_depth must be >= 0, got {self.enc_depth}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        for dim, heads, side in ((self.enc_dim, self.enc_heads, "enc"), (self.dec_dim, self.dec_heads, "dec")):
            # 2D RoPE rotates each half of a head by rotate-half, so a head needs a multiple of 4 channels.
            if dim % heads or (dim // heads) % 4:
                raise ValueError(f"{side}_dim {dim} / {side}_heads {heads} must give a head dim divisible by 4")
        if not 1 <= self.corr_depth <= self.dec_depth:
            raise ValueError(f"corr_depth must lie in [1, dec_depth={self.dec_depth}], got {self.corr_depth}")

    @property
    def grid_size(self) -> int:
        """Patches per image side (14 for 224 / 16)."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Tokens per image (196 for 224 / 16)."""
        return self.grid_size**2


_FULL = Clip3RConfig(enc_dim=1024, enc_depth=24, enc_heads=16, dec_dim=768, dec_depth=12, dec_heads=12)

CONFIGS: dict[str, Clip3RConfig] = {
    # The published checkpoints siyan824/slam3r_i2p and siyan824/slam3r_l2w.
    "slam3r_i2p": _FULL,
    "slam3r_l2w": _FULL,
    # The configuration of the shared test vectors (same code paths, head dim 64 as in the real model).
    "small": Clip3RConfig(enc_dim=128, enc_depth=2, enc_heads=2, dec_dim=128, dec_depth=2, dec_heads=2),
}


def get_config(config: str | Clip3RConfig) -> Clip3RConfig:
    """Return the named configuration, or ``config`` itself when it already is one."""
    if isinstance(config, Clip3RConfig):
        return config
    if config not in CONFIGS:
        raise ValueError(f"unknown CLIP3R config {config!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[config]
