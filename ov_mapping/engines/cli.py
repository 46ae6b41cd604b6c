"""``ov-mapping export-engines``: export the four CLIP3R ONNX graphs, then build TensorRT engines where possible."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from ov_mapping.models.clip3r import CONFIGS

from .export import DEFAULT_OPSET, export_graph, hash_weights, write_manifest
from .factory import default_artifacts_dir, load_or_init
from .graphs import GRAPH_NAMES, GraphSpec
from .precision import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ov-mapping export-engines``."""
    parser.add_argument("--config", default="slam3r_i2p", choices=sorted(CONFIGS),
                        help="network architecture (default %(default)s: the published SLAM3R size)")
    parser.add_argument("--i2p-weights", type=Path, default=None, help="I2P checkpoint (default: RANDOM weights)")
    parser.add_argument("--l2w-weights", type=Path, default=None, help="L2W checkpoint (default: RANDOM weights)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $OV_MAPPING_ENGINES or ~/.cache/ov_mapping/engines)")
    parser.add_argument("--precision", default=None, choices=sorted(PRECISIONS),
                        help="graph precision (default fp16 when TensorRT is built, else fp32)")
    parser.add_argument("--graphs", nargs="+", default=list(GRAPH_NAMES), choices=GRAPH_NAMES,
                        help="which graphs (default: all four)")
    parser.add_argument("--workspace-gib", type=float, default=4.0, help="TensorRT workspace limit (default 4 GiB)")
    parser.add_argument("--no-tensorrt", action="store_true", help="stop after the ONNX export")


def tensorrt_status() -> str | None:
    """None when TensorRT engines can be built here, else the reason they cannot."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python package is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return None


def format_table(rows: list[tuple[str, str, int]]) -> str:
    """A plain-text table of (graph, file, size in bytes) rows with a total line."""
    width = max([len(r[1]) for r in rows] + [4])
    lines = [f"{'graph':<10} {'file':<{width}} {'size':>10}"]
    lines += [f"{g:<10} {f:<{width}} {s / 2**20:>7.1f} MiB" for g, f, s in rows]
    lines.append(f"{'total':<10} {'':<{width}} {sum(r[2] for r in rows) / 2**20:>7.1f} MiB")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (0 also when TensorRT was skipped for a stated reason)."""
    from tqdm import tqdm

    trt_problem = "disabled by --no-tensorrt" if args.no_tensorrt else tensorrt_status()
    precision = args.precision or ("fp32" if trt_problem else "fp16")
    out = Path(args.out) if args.out is not None else default_artifacts_dir()
    if args.i2p_weights is None or ("l2w" in args.graphs and args.l2w_weights is None):
        print("WARNING: no weights given for every network: exporting RANDOMLY INITIALISED graphs "
              "(fine for timing and plumbing, meaningless outputs)")
    i2p = load_or_init("i2p", args.config, args.i2p_weights)
    l2w = load_or_init("l2w", args.config, args.l2w_weights) if "l2w" in args.graphs else None
    exported = {}
    with torch.no_grad():
        for name in tqdm(args.graphs, desc=f"ONNX export ({precision})", unit="graph"):
            exported[name] = export_graph(name, i2p, l2w, out / "onnx" / f"{name}.{precision}.onnx", precision)
    write_manifest(out / "onnx", exported, hash_weights(i2p, l2w), precision, DEFAULT_OPSET)
    rows = [(n, str(g.path), g.path.stat().st_size) for n, g in exported.items()]
    if trt_problem:
        print(f"TensorRT engines not built: {trt_problem}. The ONNX files run with backend 'onnxruntime'.")
    else:
        rows += _build_engines(exported, i2p, out / "tensorrt", precision, int(args.workspace_gib * 2**30))
    print(format_table(rows))
    return 0


def _build_engines(exported, i2p, cache_dir: Path, precision: str, workspace: int) -> list[tuple[str, str, int]]:
    from tqdm import tqdm

    from .engine_cache import EngineCache
    from .tensorrt_engine import ProfileLimits, load_or_build_engine, shape_profile

    cache = EngineCache(cache_dir)
    clip_dim = None if i2p.clip_injection is None else i2p.clip_injection.clip_dim
    rows = []
    for name, graph in tqdm(exported.items(), desc=f"TensorRT build ({precision})", unit="engine"):
        spec = GraphSpec(graph.name, graph.inputs, graph.outputs, graph.dynamic_axes)
        profile = shape_profile(spec, i2p.config, ProfileLimits(), clip_dim)
        _, key, built = load_or_build_engine(graph.path, spec, profile, cache, precision, workspace)
        path = cache.paths(key)[0]
        rows.append((f"{name}{'' if built else '*'}", str(path), path.stat().st_size))
    print("* engine reused from the cache")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ov-mapping export-engines", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
