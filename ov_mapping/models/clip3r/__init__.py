"""CLIP3R: SLAM3R's Image-to-Points and Local-to-World networks with Ov3R's CLIP additions.

Loads the published SLAM3R weights (siyan824/slam3r_i2p, siyan824/slam3r_l2w; non-commercial licence) with
strict key checks; CLIP3R parameters live under new names only (``clip_injection.*``, ``clip_head.*``) and start
with zero effect on the geometry.
"""

from .build import build_i2p, build_l2w
from .checkpoint import (
    CLIP3R_PREFIXES,
    CheckpointError,
    check_state_dict,
    infer_clip_dim,
    load_checkpoint,
    load_i2p,
    load_l2w,
    load_state_dict_checked,
    read_state_dict,
)
from .config import CONFIGS, Clip3RConfig, get_config
from .i2p import I2P
from .injection import ClipInjection, pool_feature_map_to_patches
from .l2w import L2W

__all__ = [
    "CLIP3R_PREFIXES",
    "CONFIGS",
    "CheckpointError",
    "Clip3RConfig",
    "ClipInjection",
    "I2P",
    "L2W",
    "build_i2p",
    "build_l2w",
    "check_state_dict",
    "get_config",
    "infer_clip_dim",
    "load_checkpoint",
    "load_i2p",
    "load_l2w",
    "load_state_dict_checked",
    "pool_feature_map_to_patches",
    "read_state_dict",
]
