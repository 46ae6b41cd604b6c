"""Loading SLAM3R / CLIP3R checkpoints with strict, named key checks.

Accepted files: ``*.safetensors`` (the published ``model.safetensors``) and torch pickles (``.pth`` / ``.pt``)
holding the state dict under a "model" key (SLAM3R training checkpoints) or as the top-level dict.
A CLIP3R checkpoint is a SLAM3R one plus keys under :data:`CLIP3R_PREFIXES`; no other difference is accepted.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .build import build_i2p, build_l2w
from .config import Clip3RConfig
from .i2p import I2P
from .l2w import L2W

# Parameter prefixes that exist only in CLIP3R (never in the published SLAM3R weights).
CLIP3R_PREFIXES = ("clip_injection.", "clip_head.")

# Key whose shape reveals clip_dim: the injection's key projection (vit_dim, clip_dim), the head's last layer (clip_dim, dec_dim).
_CLIP_DIM_KEYS = (("clip_injection.k.weight", 1), ("clip_head.mlp.fc2.weight", 0))


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names every offending key."""


def _is_clip3r_key(key: str) -> bool:
    return key.startswith(CLIP3R_PREFIXES)


def read_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a {name: tensor} dict on the CPU.

    Pickled checkpoints are read with ``weights_only=True`` unless ``trust_pickle`` (needed for SLAM3R training
    checkpoints that also pickle their argparse arguments; only for files from a trusted source).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:  # torch raises several types for refused or corrupt pickles
        raise CheckpointError(
            f"cannot read {path} as a torch checkpoint ({err}); if it is a trusted SLAM3R training checkpoint "
            "that pickles extra objects, pass trust_pickle=True"
        ) from err
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors, or one under a 'model' key)")
    return state


def _format_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], allow_missing_clip3r: bool = False) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or wrongly shaped key.

    ``allow_missing_clip3r`` tolerates the absence of CLIP3R keys only (SLAM3R weights into a CLIP3R model);
    all SLAM3R keys are always required.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not (allow_missing_clip3r and _is_clip3r_key(k))]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_format_keys(missing)}")
    if unexpected:
        hint = ""
        if any(_is_clip3r_key(k) for k in unexpected):
            hint = " (CLIP3R keys: build the model with clip_dim, or use load_i2p / load_l2w which infer it)"
        problems.append(f"unexpected keys: {_format_keys(unexpected)}{hint}")
    if wrong:
        problems.append(f"shape mismatches: {_format_keys(wrong)}")
    if problems:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))


def load_state_dict_checked(
    model: nn.Module, state: dict[str, torch.Tensor], allow_missing_clip3r: bool = False
) -> None:
    """Check ``state`` against ``model`` (see :func:`check_state_dict`), then copy it in."""
    check_state_dict(model, state, allow_missing_clip3r)
    model.load_state_dict(state, strict=not allow_missing_clip3r)


def load_checkpoint(
    model: nn.Module, path: str | Path, allow_missing_clip3r: bool = False, trust_pickle: bool = False
) -> None:
    """Read ``path`` and load it into an already built model, with named key checks."""
    load_state_dict_checked(model, read_state_dict(path, trust_pickle), allow_missing_clip3r)


def infer_clip_dim(state: dict[str, torch.Tensor]) -> int | None:
    """clip_dim of a CLIP3R checkpoint (from its injection or feature head), or None for plain SLAM3R weights."""
    for key, axis in _CLIP_DIM_KEYS:
        if key in state:
            return int(state[key].shape[axis])
    return None


def _load_built(
    builder, path: str | Path, config: str | Clip3RConfig, device: torch.device | str, trust_pickle: bool
) -> nn.Module:
    state = read_state_dict(path, trust_pickle)
    # Built on the meta device and filled by assignment: the full I2P is 2.1 GB, never allocated twice.
    with torch.device("meta"):
        model = builder(config, clip_dim=infer_clip_dim(state))
    check_state_dict(model, state)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.to(device)


def load_i2p(
    path: str | Path, config: str | Clip3RConfig = "slam3r_i2p", device: torch.device | str = "cpu",
    trust_pickle: bool = False,
) -> I2P:
    """Build I2P (with a CLIP injection if the checkpoint has one) and load ``path`` strictly, in float32."""
    return _load_built(build_i2p, path, config, device, trust_pickle)


def load_l2w(
    path: str | Path, config: str | Clip3RConfig = "slam3r_l2w", device: torch.device | str = "cpu",
    trust_pickle: bool = False,
) -> L2W:
    """Build L2W (with a CLIP3R feature head if the checkpoint has one) and load ``path`` strictly, in float32."""
    return _load_built(build_l2w, path, config, device, trust_pickle)
