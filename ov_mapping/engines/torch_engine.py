"""PyTorch backend: the graphs of :mod:`.graphs` run eagerly on CPU or CUDA, float32 or under autocast."""

from __future__ import annotations

import contextlib

import torch

from ov_mapping.models.clip3r import I2P, L2W

from .graphs import GRAPH_NAMES, GraphSpec, build_graph
from .precision import dtype_of


class TorchGraphs:
    """Runs the graphs with the given networks (moved to ``device``); ``precision`` "fp32" | "fp16" | "bf16".

    Low precisions use ``torch.autocast`` on the weights kept in float32, as CUDA AMP inference does.
    ``threads`` > 0 sets PyTorch's intra-op thread count, which is process-wide; 0 leaves it as it is.
    """

    backend = "torch"

    def __init__(
        self,
        i2p: I2P,
        l2w: L2W | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0: leave PyTorch's setting), got {threads!r}")
        if threads:
            torch.set_num_threads(threads)
        self.precision = precision
        self._dtype = dtype_of(precision)
        self.i2p = i2p.to(self.device).eval()
        self.l2w = None if l2w is None else l2w.to(self.device).eval()
        self._graphs: dict[str, tuple[torch.nn.Module, GraphSpec]] = {}
        for name in GRAPH_NAMES:
            if name != "l2w" or self.l2w is not None:
                self._graphs[name] = build_graph(name, self.i2p, self.l2w)

    @property
    def specs(self) -> dict[str, GraphSpec]:
        return {name: spec for name, (_, spec) in self._graphs.items()}

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run graph ``name`` on named inputs (moved to this device) -> named float32 outputs on this device."""
        if name not in self._graphs:
            raise ValueError(f"graph {name!r} is not available here; available: {sorted(self._graphs)}")
        module, spec = self._graphs[name]
        args = [inputs[n].to(self.device) for n in spec.inputs]
        autocast = (
            contextlib.nullcontext()
            if self._dtype == torch.float32
            else torch.autocast(self.device.type, dtype=self._dtype)
        )
        with torch.inference_mode(), autocast:
            out = module(*args)
        out = out if isinstance(out, tuple) else (out,)
        return {n: t.float() for n, t in zip(spec.outputs, out)}
