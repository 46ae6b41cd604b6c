"""ONNX Runtime backend: the exported graphs (see :mod:`.export`) in onnxruntime sessions.

The CUDA execution provider is used when this onnxruntime build has it and ``device`` is CUDA; otherwise the CPU
provider. Inputs and outputs are torch tensors; outputs come back on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .graphs import GraphSpec


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            "the onnxruntime backend needs the 'onnxruntime' package (or 'onnxruntime-gpu' for CUDA): "
            "pip install onnxruntime"
        ) from err
    return onnxruntime


def choose_providers(available: list[str], device: str) -> list[str]:
    """Execution providers to request: CUDA first when ``device`` is "cuda" and it is available, then CPU."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"onnxruntime has no CUDAExecutionProvider (available: {available}); install onnxruntime-gpu "
                "or use device='cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeGraphs:
    """One inference session per ONNX file; ``paths`` maps graph names to files, ``specs`` their specs."""

    backend = "onnxruntime"

    def __init__(
        self, paths: dict[str, Path], specs: dict[str, GraphSpec], device: str = "cpu", threads: int = 0
    ) -> None:
        ort = _import_onnxruntime()
        missing = sorted(set(specs) - set(paths))
        if missing:
            raise ValueError(f"no ONNX file given for graph(s) {missing}")
        self.providers = choose_providers(ort.get_available_providers(), device)
        # Feeds and results pass through host numpy whatever the provider, so token handles live on the host.
        self.device = torch.device("cpu")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (all physical cores)
        self._specs = dict(specs)
        self._sessions = {
            name: ort.InferenceSession(str(paths[name]), sess_options=options, providers=self.providers)
            for name in specs
        }
        for name, session in self._sessions.items():
            got = tuple(i.name for i in session.get_inputs())
            if got != specs[name].inputs:
                raise ValueError(f"{paths[name]} has inputs {got}, expected {specs[name].inputs}: re-export it")

    @property
    def specs(self) -> dict[str, GraphSpec]:
        return dict(self._specs)

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run graph ``name`` -> named outputs as CPU torch tensors."""
        if name not in self._sessions:
            raise ValueError(f"graph {name!r} is not available here; available: {sorted(self._sessions)}")
        spec = self._specs[name]
        feeds = {n: np.ascontiguousarray(inputs[n].detach().cpu().numpy()) for n in spec.inputs}
        outs = self._sessions[name].run(list(spec.outputs), feeds)
        return {n: torch.from_numpy(o) for n, o in zip(spec.outputs, outs)}
