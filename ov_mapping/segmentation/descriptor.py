"""The fused per-segment descriptor: weighted concatenation of L2-normalised parts.

Each part (CLIP, DINO, CLIP3R) is L2-normalised and scaled by sqrt(w_i), with the weights summing to 1. Then
the concatenation has unit norm and the dot product of two descriptors is the weighted sum of the parts' cosine
similarities: sum_i w_i cos_i. A part missing for a segment (no DINO model loaded, no CLIP3R feature map in this
keyframe) is left at zero and the descriptor renormalised, so it stays a unit vector of fixed layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np


@dataclass(frozen=True)
class DescriptorPart:
    """One slice of the descriptor: ``name``, its width ``dim`` and relative ``weight``."""

    name: str
    dim: int
    weight: float


class DescriptorLayout:
    """The fixed order, widths and weights of the descriptor's parts; ``slices`` tells where each part lies."""

    def __init__(self, parts: list[DescriptorPart]) -> None:
        if not parts or len({p.name for p in parts}) != len(parts):
            raise ValueError(f"descriptor parts must be non-empty with unique names, got {parts}")
        if any(p.dim <= 0 or p.weight <= 0 for p in parts):
            raise ValueError(f"descriptor parts need positive dims and weights, got {parts}")
        total = sum(p.weight for p in parts)
        self.parts = tuple(DescriptorPart(p.name, p.dim, p.weight / total) for p in parts)
        starts = np.cumsum([0] + [p.dim for p in self.parts])
        self.slices = {p.name: slice(int(a), int(b)) for p, a, b in zip(self.parts, starts[:-1], starts[1:])}
        self.dim = int(starts[-1])

    def __repr__(self) -> str:
        return "DescriptorLayout(" + ", ".join(f"{p.name}:{p.dim}@{p.weight:.3f}" for p in self.parts) + ")"

    def fuse(self, features: Mapping[str, Optional[np.ndarray]], count: int) -> np.ndarray:
        """(count, dim) float32 unit descriptors from per-part features ((count, dim_i) or None if absent)."""
        unknown = set(features) - set(self.slices)
        if unknown:
            raise ValueError(f"unknown descriptor parts {sorted(unknown)}; layout is {self}")
        out = np.zeros((count, self.dim), np.float32)
        for part in self.parts:
            values = features.get(part.name)
            if values is None:
                continue
            if values.shape != (count, part.dim):
                raise ValueError(f"descriptor part {part.name!r} must be ({count}, {part.dim}), got {values.shape}")
            values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            norms = np.linalg.norm(values, axis=1, keepdims=True)
            unit = np.where(norms > 1e-12, values / np.maximum(norms, 1e-12), 0.0)
            out[:, self.slices[part.name]] = np.sqrt(part.weight) * unit
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.where(norms > 1e-12, out / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
