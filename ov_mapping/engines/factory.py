"""``make_runner``: one CLIP3R runner interface, three runtimes (PyTorch, ONNX Runtime, TensorRT)."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ov_mapping.models.clip3r import I2P, L2W, Clip3RConfig, build_i2p, build_l2w, get_config, load_i2p, load_l2w

from .export import export_all, hash_weights, read_manifest
from .graphs import GRAPH_NAMES, build_graph
from .runner import EngineRunner

if TYPE_CHECKING:
    from .tensorrt_engine import ProfileLimits

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
# The Python package each backend needs beyond torch, and how to get it.
_BACKEND_PACKAGES = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"),
    "tensorrt": ("tensorrt", "pip install tensorrt (NVIDIA GPU machines only)"),
}


def default_artifacts_dir() -> Path:
    """Where exported ONNX files and TensorRT engines go: $OV_MAPPING_ENGINES or ~/.cache/ov_mapping/engines."""
    return Path(os.environ.get("OV_MAPPING_ENGINES", Path.home() / ".cache" / "ov_mapping" / "engines"))


def check_backend(backend: str) -> None:
    """ValueError for an unknown backend, ImportError naming the package when its runtime is not installed."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend in _BACKEND_PACKAGES:
        module, hint = _BACKEND_PACKAGES[backend]
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"backend {backend!r} needs the Python package {module!r}, which is not installed: {hint}")


def load_or_init(kind: str, config: str | Clip3RConfig, weights: str | Path | None) -> I2P | L2W:
    """``kind`` "i2p" | "l2w" loaded strictly from ``weights``, or randomly initialised with a loud warning."""
    cfg = get_config(config)
    if weights is not None:
        return (load_i2p if kind == "i2p" else load_l2w)(weights, cfg).eval()
    logger.warning("no %s weights given: using RANDOM weights (outputs are meaningless; for tests / timing only)",
                   kind.upper())
    return (build_i2p if kind == "i2p" else build_l2w)(cfg).eval()


def exported_graphs(
    i2p: I2P, l2w: L2W | None, onnx_dir: str | Path, precision: str
) -> dict[str, Path]:
    """ONNX files of the graphs for these weights and ``precision`` in ``onnx_dir``, exported when missing or stale."""
    names = tuple(n for n in GRAPH_NAMES if n != "l2w" or l2w is not None)
    paths = read_manifest(onnx_dir, precision, hash_weights(i2p, l2w))
    if paths is not None and set(names) <= set(paths):
        return {n: paths[n] for n in names}
    logger.info("exporting CLIP3R ONNX graphs (%s) to %s", precision, onnx_dir)
    return {n: g.path for n, g in export_all(i2p, l2w, onnx_dir, precision, names).items()}


def make_runner(
    backend: str = "torch",
    config: str | Clip3RConfig = "slam3r_i2p",
    i2p_weights: str | Path | None = None,
    l2w_weights: str | Path | None = None,
    *,
    i2p: I2P | None = None,
    l2w: L2W | None = None,
    with_l2w: bool = True,
    device: str | None = None,
    precision: str | None = None,
    artifacts_dir: str | Path | None = None,
    limits: ProfileLimits | None = None,
    workspace_bytes: int | None = None,
    retrieval_batch: int = 16,
    threads: int = 0,
) -> EngineRunner:
    """A CLIP3R runner (encode / i2p / retrieval / l2w) on ``backend``.

    Networks: pass built ``i2p`` / ``l2w``, or checkpoint paths (strictly loaded), or neither (random weights,
    with a warning). ``precision``: "fp32" | "fp16" | "bf16"; default fp16 for TensorRT, fp32 otherwise.
    ``artifacts_dir``: where ONNX files (``onnx/``) and TensorRT engines (``tensorrt/``) are kept, default
    :func:`default_artifacts_dir`; exports are reused while the weights hash and precision match.
    ``device``: "cpu" | "cuda" (default cuda for TensorRT, cpu otherwise).
    ``limits``: TensorRT :class:`~.tensorrt_engine.ProfileLimits`. ``retrieval_batch``: candidates per
    retrieval pass (see :class:`~.runner.EngineRunner`). ``threads``: CPU intra-op threads of onnxruntime (its
    session) or torch (``torch.set_num_threads``, process-wide); 0 keeps the runtime's default.
    """
    check_backend(backend)
    precision = precision or ("fp16" if backend == "tensorrt" else "fp32")
    device = device or ("cuda" if backend == "tensorrt" else "cpu")
    if i2p is None:
        i2p = load_or_init("i2p", config, i2p_weights)
    if not with_l2w:
        l2w = None
    elif l2w is None:
        l2w = load_or_init("l2w", i2p.config, l2w_weights)
    cfg = i2p.config
    clip_dim = None if i2p.clip_injection is None else i2p.clip_injection.clip_dim
    if backend == "torch":
        from .torch_engine import TorchGraphs

        return EngineRunner(TorchGraphs(i2p, l2w, device, precision, threads), cfg, clip_dim, retrieval_batch)
    root = Path(artifacts_dir) if artifacts_dir is not None else default_artifacts_dir()
    with torch.no_grad():
        paths = exported_graphs(i2p, l2w, root / "onnx", precision)
    specs = {name: build_graph(name, i2p, l2w)[1] for name in paths}
    if backend == "onnxruntime":
        from .onnxruntime_engine import OnnxRuntimeGraphs

        return EngineRunner(OnnxRuntimeGraphs(paths, specs, device, threads), cfg, clip_dim, retrieval_batch)
    from .tensorrt_engine import DEFAULT_WORKSPACE_BYTES, ProfileLimits, TensorRTGraphs

    limits = limits or ProfileLimits()
    if retrieval_batch > limits.retrieval_batch[2]:
        raise ValueError(f"retrieval_batch {retrieval_batch} exceeds the TensorRT profile maximum {limits.retrieval_batch[2]}")
    graphs = TensorRTGraphs(paths, specs, cfg, root / "tensorrt", precision, limits,
                            workspace_bytes or DEFAULT_WORKSPACE_BYTES, clip_dim, device)
    return EngineRunner(graphs, cfg, clip_dim, retrieval_batch)
