"""Precision names and the mixed-precision copy of a network used to export float16 / bfloat16 graphs.

TensorRT 11 builds strongly typed networks only (the FP16 / BF16 builder flags are gone), so the precision
has to live in the ONNX graph itself. :func:`lower_precision_copy` gives the same policy as CUDA autocast:
matmuls, convolutions and the residual stream in the low type; LayerNorms, the pointmap / confidence heads,
the retrieval head and the CLIP3R feature head in float32 (their exp / norm / variance overflow float16), and
the two patch-embedding convolutions (ONNX Conv has no bfloat16 before opset 22; one layer each, cheap).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Sub-modules of I2P / L2W that stay float32 in a low-precision copy: heads (float32 outputs) and the
# patch-embedding convolutions (float32 inside, outputs cast back to the low type).
FLOAT32_HEADS = ("downstream_head1", "downstream_head2", "corr_score_norm", "corr_score_proj", "clip_head")
FLOAT32_CONVS = ("patch_embed", "ponit_embedder")


def dtype_of(precision: str) -> torch.dtype:
    """torch dtype of a precision name ("fp32", "fp16", "bf16")."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
    return PRECISIONS[precision]


class Float32Island(nn.Module):
    """Runs ``module`` in float32 on float32 copies of its tensor inputs; outputs stay float32."""

    def __init__(self, module: nn.Module, cast_back: bool) -> None:
        super().__init__()
        self.module = module.float()
        self.cast_back = cast_back

    def forward(self, x: torch.Tensor, *args):
        out = self.module(x.float(), *args)
        # LayerNorm / convolution outputs feed low-precision layers again; heads' outputs are final, float32.
        return out.to(x.dtype) if self.cast_back else out


def lower_precision_copy(model: nn.Module, precision: str) -> nn.Module:
    """A deep copy of I2P / L2W in ``precision`` with float32 islands (see module doc); ``model`` is untouched.

    For "fp32" the copy is plain float32.
    """
    dtype = dtype_of(precision)
    low = copy.deepcopy(model).to(dtype)
    if dtype == torch.float32:
        return low
    for name in FLOAT32_HEADS:
        head = getattr(low, name, None)
        if head is not None:
            setattr(low, name, Float32Island(head, cast_back=False))
    for name in FLOAT32_CONVS:
        conv = getattr(low, name, None)
        if conv is not None:
            setattr(low, name, Float32Island(conv, cast_back=True))
    inside_islands = {id(m) for island in low.modules() if isinstance(island, Float32Island) for m in island.modules()}
    for parent in list(low.modules()):
        if id(parent) in inside_islands:
            continue
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LayerNorm):
                setattr(parent, name, Float32Island(child, cast_back=True))
    return low
