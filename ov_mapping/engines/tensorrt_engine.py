"""TensorRT backend: engines built from the exported ONNX graphs, cached on disk, run on CUDA torch tensors.

``tensorrt`` is imported only inside the functions that need it, so this module imports everywhere.
Precision lives in the ONNX graph (export with ``precision="fp16"`` etc., see :mod:`.precision`) and the
network is built strongly typed: TensorRT 11 has no other mode (its FP16 / BF16 builder flags are gone) and
TensorRT 10 supports it, so one code path serves both. TensorRT >= 10 is required.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ov_mapping.models.clip3r import Clip3RConfig

from .engine_cache import EngineCache, EngineKey, ShapeProfile, make_engine_key
from .export import sha256_file
from .graphs import GraphSpec

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    """The ``tensorrt`` module (>= 10), or ImportError / RuntimeError saying what to install."""
    try:
        import tensorrt
    except ImportError as err:
        raise ImportError(
            "the tensorrt backend needs NVIDIA TensorRT >= 10 for Python (pip install tensorrt, on a machine "
            "with an NVIDIA GPU and driver); use backend='onnxruntime' or 'torch' otherwise"
        ) from err
    major = int(tensorrt.__version__.split(".")[0])
    if major < 10:
        raise RuntimeError(f"TensorRT {tensorrt.__version__} is too old: strongly typed builds need TensorRT >= 10")
    return tensorrt


def require_cuda() -> None:
    """RuntimeError unless torch sees a CUDA GPU (TensorRT engines run only there)."""
    if not torch.cuda.is_available():
        raise RuntimeError("the tensorrt backend needs a CUDA GPU, and torch sees none")


@dataclass(frozen=True)
class ProfileLimits:
    """(min, opt, max) of every symbolic axis the optimisation profiles cover.

    Defaults follow SLAM3R's streaming: I2P windows of up to 11 views; retrieval of up to 16 candidate scene
    frames (batch axis, the runner's ``retrieval_batch``) against up to 10 keyframes (views = 1 + keyframes);
    L2W with up to 10 scene frames and 10 keyframes.
    """

    batch: tuple[int, int, int] = (1, 1, 1)
    window_views: tuple[int, int, int] = (2, 6, 11)
    retrieval_batch: tuple[int, int, int] = (1, 16, 16)
    retrieval_views: tuple[int, int, int] = (2, 11, 11)
    scene_views: tuple[int, int, int] = (1, 10, 10)
    key_views: tuple[int, int, int] = (1, 5, 10)
    clip_tokens: tuple[int, int, int] = (1, 196, 196)

    def __post_init__(self) -> None:
        for name, (lo, opt, hi) in vars(self).items():
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"ProfileLimits.{name} must satisfy 1 <= min <= opt <= max, got {(lo, opt, hi)}")
        if self.window_views[0] < 2 or self.retrieval_views[0] < 2:
            raise ValueError("window_views and retrieval_views need at least 2 views (reference + one source)")


def shape_profile(spec: GraphSpec, config: Clip3RConfig, limits: ProfileLimits, clip_dim: int | None = None
                  ) -> ShapeProfile:
    """(min, opt, max) shapes of every input of ``spec``: symbolic axes from ``limits``, the rest from ``config``."""
    s, c, hw = config.num_patches, config.enc_dim, config.img_size
    fixed = {
        "images": (None, 3, hw, hw),
        "tokens": (None, None, s, c),
        "clip": (None, None, None, clip_dim),
        "scene_tokens": (None, None, s, c),
        "key_tokens": (None, None, s, c),
        "scene_points": (None, None, hw, hw, 3),
        "key_points": (None, None, hw, hw, 3),
        "scene_masks": (None, None, s),
        "key_masks": (None, None, s),
    }
    retrieval = spec.name == "retrieval"
    ranges = {"batch": limits.retrieval_batch if retrieval else limits.batch,
              "views": limits.retrieval_views if retrieval else limits.window_views, "scene_views": limits.scene_views,
              "key_views": limits.key_views, "clip_tokens": limits.clip_tokens}
    profile = {}
    for name in spec.inputs:
        if name == "clip" and clip_dim is None:
            raise ValueError("the graph takes CLIP tokens: give clip_dim")
        axes = spec.dynamic_axes.get(name, {})
        shapes = []
        for which in range(3):
            shape = []
            for axis, dim in enumerate(fixed[name]):
                if axis in axes:
                    shape.append(ranges[axes[axis]][which])
                elif dim is None:
                    raise ValueError(f"{spec.name}.{name} axis {axis} is neither fixed nor symbolic")
                else:
                    shape.append(dim)
            shapes.append(tuple(shape))
        profile[name] = tuple(shapes)
    return profile


def build_serialized_engine(onnx_path: str | Path, profile: ShapeProfile, workspace_bytes: int) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build a serialised engine with one profile."""
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    # parse_from_file resolves external weight files next to the ONNX file.
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def _torch_dtype(trt, trt_dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    for trt_name, torch_dtype in (("bfloat16", torch.bfloat16), ("int64", torch.int64), ("uint8", torch.uint8)):
        if hasattr(trt, trt_name):
            table[getattr(trt, trt_name)] = torch_dtype
    if trt_dtype not in table:
        raise RuntimeError(f"engine tensor type {trt_dtype} has no torch equivalent")
    return table[trt_dtype]


class TensorRTGraph:
    """One deserialised engine and its execution context; runs on the current torch CUDA stream."""

    def __init__(self, engine_bytes: bytes, spec: GraphSpec, device: torch.device) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self.spec = spec
        self.device = device
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialise the {spec.name} engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = tuple(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        if set(inputs) != set(spec.inputs):
            raise RuntimeError(f"{spec.name} engine inputs {inputs} differ from the graph's {spec.inputs}")

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named inputs (any device; copied to this GPU and the engine's dtypes) -> named outputs on this GPU."""
        engine, context = self.engine, self.context
        keep = []  # the converted inputs must outlive the enqueue call
        with torch.cuda.device(self.device):
            for name in self.spec.inputs:
                t = inputs[name].to(self.device, _torch_dtype(self._trt, engine.get_tensor_dtype(name))).contiguous()
                if not context.set_input_shape(name, tuple(t.shape)):
                    raise ValueError(f"{self.spec.name}.{name} shape {tuple(t.shape)} is outside the engine's profile")
                context.set_tensor_address(name, t.data_ptr())
                keep.append(t)
            outputs = {}
            for name in self.spec.outputs:
                shape = tuple(context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=_torch_dtype(self._trt, engine.get_tensor_dtype(name)),
                                  device=self.device)
                context.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise RuntimeError(f"TensorRT failed to enqueue the {self.spec.name} engine")
        # Work is queued on the current stream: torch ops on the outputs are ordered after it.
        return {n: o.float() for n, o in outputs.items()}


def load_or_build_engine(
    onnx_path: str | Path,
    spec: GraphSpec,
    profile: ShapeProfile,
    cache: EngineCache,
    precision: str,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    device: torch.device | int = 0,
) -> tuple[bytes, EngineKey, bool]:
    """The serialised engine of ``onnx_path`` from ``cache`` or freshly built (and stored, older builds of this
    graph removed). Returns (engine bytes, key, whether it was built now)."""
    trt = import_tensorrt()
    require_cuda()
    key = make_engine_key(spec.name, sha256_file(onnx_path), profile, trt.__version__,
                          torch.cuda.get_device_name(device), precision, workspace_bytes)
    engine = cache.load(key)
    if engine is not None:
        return engine, key, False
    logger.info("building the TensorRT %s engine from %s (%s); this takes minutes", spec.name, onnx_path, precision)
    engine = build_serialized_engine(onnx_path, profile, workspace_bytes)
    cache.store(key, engine)
    cache.remove_stale(key)
    return engine, key, True


class TensorRTGraphs:
    """TensorRT engines for every graph in ``paths`` (ONNX files exported in ``precision``)."""

    backend = "tensorrt"

    def __init__(
        self,
        paths: dict[str, Path],
        specs: dict[str, GraphSpec],
        config: Clip3RConfig,
        cache_dir: str | Path,
        precision: str = "fp16",
        limits: ProfileLimits | None = None,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
        clip_dim: int | None = None,
        device: torch.device | str = "cuda",
    ) -> None:
        import_tensorrt()
        require_cuda()
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"the tensorrt backend runs on CUDA only, got device {device!r}")
        limits = limits or ProfileLimits()
        cache = EngineCache(cache_dir)
        self._specs = dict(specs)
        self._graphs = {}
        for name, spec in specs.items():
            profile = shape_profile(spec, config, limits, clip_dim)
            engine, _, _ = load_or_build_engine(paths[name], spec, profile, cache, precision, workspace_bytes,
                                                self.device)
            self._graphs[name] = TensorRTGraph(engine, spec, self.device)

    @property
    def specs(self) -> dict[str, GraphSpec]:
        return dict(self._specs)

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run graph ``name`` -> named float32 outputs on the GPU."""
        if name not in self._graphs:
            raise ValueError(f"graph {name!r} is not available here; available: {sorted(self._graphs)}")
        return self._graphs[name].run(inputs)
