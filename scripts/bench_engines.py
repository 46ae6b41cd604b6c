#!/usr/bin/env python3
"""CLIP3R engine benchmark (issue 4): PyTorch vs ONNX Runtime latency on this machine. Not a test.

For each config (the small test config and the full SLAM3R size) and each of the encoder (one image) and an
I2P window (``--views`` views), both backends run in this process on the same random weights and inputs, with the same intra-op thread count;
figures are the median of ``--runs`` timed runs after one warm-up, with the ratio onnxruntime / torch
(< 1: ONNX Runtime is faster). Full size uses ``--full-runs`` (it is seconds per run on a CPU).
The one-off ONNX export time is reported too. Writes JSON and prints a table.

Usage: python scripts/bench_engines.py [--out out/bench_engines.json] [--configs small slam3r_i2p]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ov_mapping.engines import make_runner  # noqa: E402
from ov_mapping.models.clip3r import build_i2p  # noqa: E402


def median_seconds(fn, runs: int) -> float:
    """Median wall time of ``runs`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_config(config: str, views: int, runs: int, work_dir: Path, threads: int) -> list[dict]:
    """Encoder and I2P-window latency of torch and onnxruntime for one config; one row per (graph, backend)."""
    torch.manual_seed(0)
    i2p = build_i2p(config)
    start = time.perf_counter()
    ort_runner = make_runner("onnxruntime", i2p=i2p, with_l2w=False, artifacts_dir=work_dir / config,
                             threads=threads)
    export_s = time.perf_counter() - start
    torch_runner = make_runner("torch", i2p=i2p, with_l2w=False)
    images = np.random.default_rng(0).uniform(-1, 1, size=(views, 3, 224, 224)).astype(np.float32)
    tokens = torch_runner.encode(images)
    cases = {
        "encoder (1 image)": lambda r: r.encode(images[:1]),
        f"i2p ({views} views)": lambda r: r.i2p(tokens, views // 2),
    }
    rows = []
    for case, call in cases.items():
        t_torch = median_seconds(lambda: call(torch_runner), runs)
        t_ort = median_seconds(lambda: call(ort_runner), runs)
        rows.append({"config": config, "case": case, "runs": runs, "torch_ms": 1e3 * t_torch,
                     "onnxruntime_ms": 1e3 * t_ort, "ratio_ort_over_torch": t_ort / t_torch,
                     "export_s": export_s, "threads": threads})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_engines.json")
    parser.add_argument("--configs", nargs="+", default=["small", "slam3r_i2p"])
    parser.add_argument("--views", type=int, default=5, help="I2P window size (default 5)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs for the small config")
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op threads of both backends (default 2; use 1 on a loaded machine)")
    parser.add_argument("--full-runs", type=int, default=2, help="timed runs for full-size configs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            runs = args.runs if config == "small" else args.full_runs
            rows += bench_config(config, args.views, runs, Path(tmp), args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"{'config':<11} {'case':<18} {'runs':>4} {'torch ms':>10} {'ort ms':>10} {'ort/torch':>9} {'export s':>8}")
    for r in rows:
        print(f"{r['config']:<11} {r['case']:<18} {r['runs']:>4} {r['torch_ms']:>10.1f} {r['onnxruntime_ms']:>10.1f} "
              f"{r['ratio_ort_over_torch']:>9.2f} {r['export_s']:>8.1f}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
