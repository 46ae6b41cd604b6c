"""Build a CLIP3R stream from a node's parameters: resolve weights, pick the runtime, configure the stream.

No ROS here: reconstruction_node's RGB mode passes its parameter values as a ``Clip3rSettings``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip3rSettings:
    config: str = "slam3r_i2p"  # architecture: "slam3r_i2p" (the public checkpoints) or "small"
    i2p_weights: str = "slam3r_i2p"  # registry name or checkpoint file
    l2w_weights: str = "slam3r_l2w"
    allow_random_weights: bool = False  # plumbing tests only: untrained networks give meaningless geometry
    backend: str = "torch"
    precision: str = "fp32"
    device: str = "cpu"
    keyframe_stride: int = 0  # 0 = automatic
    window_radius: int = 5
    lookahead: int = 0
    register_group_size: int = 1
    buffer_size: int = 100
    i2p_min_confidence: float = 1.5
    l2w_min_confidence: float = 10.0


def resolve_weights(name_or_path: str, kind: str) -> Optional[Path]:
    """The checkpoint file a parameter names: a registry entry (downloaded) or a path; None for ''."""
    from ov_mapping.models.registry import downloaded_path, list_weights

    if not name_or_path:
        return None
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    names = {entry.name for entry in list_weights(kind)}
    if name_or_path not in names:
        raise FileNotFoundError(f"{name_or_path!r} is neither a file nor a {kind} registry entry "
                                f"({', '.join(sorted(names))})")
    return downloaded_path(name_or_path, kind)[1]


def build_stream(settings: Clip3rSettings) -> tuple[Clip3rStream, str]:
    """(stream, a line describing it). Missing weights raise FileNotFoundError unless random weights are allowed."""
    from ov_mapping.engines import make_runner

    try:
        i2p = resolve_weights(settings.i2p_weights, "clip3r_i2p")
        l2w = resolve_weights(settings.l2w_weights, "clip3r_l2w")
    except FileNotFoundError:
        if not settings.allow_random_weights:
            raise
        i2p = l2w = None
    if (i2p is None or l2w is None) and not settings.allow_random_weights:
        raise FileNotFoundError("RGB mode needs CLIP3R / SLAM3R I2P and L2W weights (clip3r_i2p_weights, "
                                "clip3r_l2w_weights)")
    runner = make_runner(settings.backend, settings.config, i2p, l2w, device=settings.device,
                         precision=settings.precision)
    config = StreamConfig(keyframe_stride=settings.keyframe_stride or None, window_radius=settings.window_radius,
                          lookahead=settings.lookahead, register_group_size=settings.register_group_size,
                          buffer_size=settings.buffer_size, i2p_min_confidence=settings.i2p_min_confidence,
                          l2w_min_confidence=settings.l2w_min_confidence)
    weights = "RANDOM weights (plumbing only)" if i2p is None else f"{i2p.name} + {l2w.name}"
    return Clip3rStream(runner, config), (f"CLIP3R {settings.config} on {settings.backend}/{settings.device}/"
                                          f"{settings.precision}, {weights}")
