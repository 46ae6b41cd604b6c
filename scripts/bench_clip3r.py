#!/usr/bin/env python3
"""CLIP3R runtime benchmarks (issue 4): per-stage latency per backend. Not a test: prints a table and writes JSON.

Per network configuration ("small": the test-vector config; "full": the published SLAM3R size, random weights) and
per backend (``ov_mapping.engines.make_runner``: torch, onnxruntime, tensorrt; all on the same weights), the
latency of each call the stream makes through the runner interface:

- encode: one image (one keyframe's encoder tokens);
- i2p: one causal I2P window (default radius 5: 6 views);
- retrieval: scene-frame ranking of one registration group (``--candidates`` x ``--group`` windows, decoder depth 2);
- l2w: registering one group (``--group`` keyframes against ``--scene`` scene frames);
- stream (small only): frames per second of the whole engine on a synthetic pan, every frame a keyframe;

plus the runner's build time (ONNX export / TensorRT engine build included, into a temporary folder) and peak
resident memory (VmHWM, reset per backend where Linux allows). Each figure is the median of the timed runs after
one warm-up; ``x torch`` is the ratio to the ``torch`` backend of the same configuration, measured in this process
(< 1: faster than PyTorch). Every backend gets ``--threads`` intra-op threads.

Usage: python scripts/bench_clip3r.py [--configs small full] [--backends torch onnxruntime] [--device cuda]
       [--out out/bench_clip3r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ov_mapping.engines import BACKENDS, Clip3rRunner, EngineRunner, make_runner  # noqa: E402
from ov_mapping.models.clip3r import I2P, L2W, build_i2p, build_l2w  # noqa: E402
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig  # noqa: E402

CONFIG_NAMES = {"small": "small", "full": "slam3r_i2p"}


# ------------------------------------------------------------------------------------------------------ measuring


def reset_peak_memory() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """VmHWM of this process in MiB (peak resident memory since start or the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def median_seconds(fn: Callable[[], object], runs: int, device: torch.device) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls after one untimed warm-up call."""
    # encode leaves its tokens on the device: wait for CUDA work so that it is inside the timed call
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def random_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, 224, 224)).astype(np.float32)


def camera_pan(count: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth pan across a random texture, 320 x 240 uint8 frames."""
    canvas = np.random.default_rng(seed).integers(0, 256, (240, 320 + 4 * count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(canvas[:, 4 * i : 4 * i + 320]) for i in range(count)]


def bench_stages(runner: EngineRunner, args: argparse.Namespace, runs: int) -> dict[str, dict]:
    """Latency of each protocol call the stream makes, on random inputs."""
    needed = max(args.views, args.candidates + args.group, args.scene + args.group)
    tokens = runner.encode(random_images(needed))
    pts = np.random.default_rng(1).normal(0, 1, (needed, 224, 224, 3)).astype(np.float32)
    one = random_images(1, seed=2)
    window = tokens[: args.views]
    candidates, sources = tokens[: args.candidates], tokens[args.candidates : args.candidates + args.group]
    scene, keys = tokens[: args.scene], tokens[args.scene : args.scene + args.group]
    stages = {
        "encode": (lambda: runner.encode(one), "1 image"),
        "i2p": (lambda: runner.i2p(window, len(window) - 1), f"{args.views} views"),
        "retrieval": (lambda: runner.retrieval(candidates, sources), f"{args.candidates} x {args.group}"),
        "l2w": (
            lambda: runner.l2w(scene, pts[: args.scene], keys, pts[args.scene : args.scene + args.group]),
            f"{args.scene} scene + {args.group} keys",
        ),
    }
    out = {}
    for name, (fn, shape) in stages.items():
        median, times = median_seconds(fn, runs, runner.graphs.device)
        out[name] = {"shape": shape, "median_s": median, "runs_s": times}
        print(f"  {name:<10} {shape:<22} {median * 1000:10.1f} ms", flush=True)
    return out


def bench_stream(runner: Clip3rRunner, frames: int) -> dict:
    """Frames per second of the whole engine (stride 1, SLAM3R's other defaults) over ``frames`` frames."""
    stream = Clip3rStream(runner, StreamConfig(keyframe_stride=1))
    images = camera_pan(frames)
    start = time.perf_counter()
    produced = sum(len(stream.push(rgb, 0.1 * i)) for i, rgb in enumerate(images))
    produced += len(stream.flush())
    seconds = time.perf_counter() - start
    print(f"  {'stream':<10} {f'{frames} frames':<22} {seconds / frames * 1000:10.1f} ms/frame", flush=True)
    return {"frames": frames, "keyframes": produced, "seconds": seconds, "fps": frames / seconds}


def bench_backend(backend: str, nets: tuple[I2P, L2W], config: str, work_dir: Path, args: argparse.Namespace) -> dict:
    resettable = reset_peak_memory()
    start = time.perf_counter()
    runner = make_runner(backend, i2p=nets[0], l2w=nets[1], device=args.device, precision=args.precision,
                         artifacts_dir=work_dir / config, threads=args.threads, retrieval_batch=args.retrieval_batch)
    build_s = time.perf_counter() - start
    print(f"{backend} / {config} (built in {build_s:.1f} s)", flush=True)
    runs = args.runs_full if config == "full" else args.runs
    result = {"build_s": build_s, "stages": bench_stages(runner, args, runs)}
    if config == "small":
        result["stream"] = bench_stream(runner, args.stream_frames)
    result["peak_rss_mb"] = peak_memory_mb()
    result["peak_rss_is_per_backend"] = resettable
    print(f"  peak resident memory {result['peak_rss_mb']:.0f} MiB", flush=True)
    del runner
    return result


def bench_config(config: str, backends: list[str], work_dir: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Every backend on one pair of randomly initialised networks (speed does not depend on the weights)."""
    torch.manual_seed(0)
    nets = build_i2p(CONFIG_NAMES[config]), build_l2w(CONFIG_NAMES[config])
    # torch first: the ratios' baseline
    return {b: bench_backend(b, nets, config, work_dir, args) for b in sorted(backends, key=lambda b: b != "torch")}


def add_ratios(results: dict) -> None:
    """Each stage's median over the torch backend's median of the same configuration."""
    for config, backends in results.items():
        base = backends.get("torch")
        if base is None:
            continue
        for result in backends.values():
            for name, stage in result["stages"].items():
                stage["ratio_to_torch"] = stage["median_s"] / base["stages"][name]["median_s"]


def print_table(results: dict) -> None:
    print("\nconfig  backend      stage       shape                     median ms   x torch")
    for config, backends in results.items():
        for backend, result in backends.items():
            for name, stage in result["stages"].items():
                print(f"{config:<7} {backend:<12} {name:<11} {stage['shape']:<24} {stage['median_s'] * 1000:10.1f}"
                      f"   {stage.get('ratio_to_torch', float('nan')):6.2f}")
            if "stream" in result:
                s = result["stream"]
                print(f"{config:<7} {backend:<12} {'stream':<11} {str(s['frames']) + ' frames':<24} "
                      f"{s['seconds'] / s['frames'] * 1000:10.1f}   ({s['fps']:.1f} frames/s)")
            print(f"{config:<7} {backend:<12} built in {result['build_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "full"], choices=sorted(CONFIG_NAMES))
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=BACKENDS)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda for tensorrt, else cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], help="default: the backend's")
    parser.add_argument("--views", type=int, default=6, help="I2P window size (causal radius 5 -> 6)")
    parser.add_argument("--group", type=int, default=10, help="keyframes registered per L2W call")
    parser.add_argument("--scene", type=int, default=10, help="scene frames per L2W call")
    parser.add_argument("--candidates", type=int, default=10, help="buffered frames ranked per retrieval")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per stage (small)")
    parser.add_argument("--runs-full", type=int, default=2, help="timed runs per stage (full size)")
    parser.add_argument("--stream-frames", type=int, default=30)
    parser.add_argument("--retrieval-batch", type=int, default=16, help="candidates per retrieval pass")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads per backend")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_clip3r.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        results = {config: bench_config(config, args.backends, Path(tmp), args) for config in args.configs}
    add_ratios(results)
    print_table(results)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__, "load_average": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
