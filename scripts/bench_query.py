#!/usr/bin/env python3
"""Benchmark: text-query latency over a large instance map (p50 / p99), plus goal pose and vocabulary labelling.

Builds an InstanceMap of N instances (random unit descriptors, separate positions) through the normal
``add_segments`` path, then times three query paths over many random queries (the text encoder is not included):
- ``cached``: ``QueryIndex.query`` with the map unchanged since the last query (the steady state);
- ``after_keyframe``: the same, right after an ``add_segments`` call that changed 20 instances (untimed);
- ``uncached``: ``query_instances``, which also computes every instance's similarity to the negatives.
The baseline, run in the same process, is a bare cosine matvec + full argsort over the same matrix (no negatives,
no validation), so the ratios show what the normalisation and checks cost. Prints a table and writes JSON.

    python scripts/bench_query.py --instances 10000 --dims 512 1152 --json bench_query.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ov_mapping.core.types import Segment  # noqa: E402
from ov_mapping.mapping.instances import InstanceMap  # noqa: E402
from ov_mapping.mapping.query import QueryIndex, compute_goal_pose, query_instances  # noqa: E402
from ov_mapping.mapping.vocabulary import Vocabulary, label_instances  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build_map(num_instances: int, dim: int, rng: np.random.Generator, per_call: int = 100):
    """A map of ``num_instances`` instances on a 3D grid, built by ``add_segments``.

    Returns the map, the build time in seconds, and the segments of the first ``per_call`` instances (re-adding
    them as a new keyframe changes exactly those instances).
    """
    instance_map = InstanceMap(max_instances=max(num_instances, 1), merge_every=0)
    descriptors = unit_rows(rng, num_instances, dim)
    side = int(np.ceil(num_instances ** (1 / 3)))
    mask = np.zeros((2, 2), dtype=bool)
    calls = []
    for first in range(0, num_instances, per_call):
        segments = []
        for i in range(first, min(num_instances, first + per_call)):
            centre = np.array([i % side, (i // side) % side, i // (side * side)], dtype=np.float64)
            points = (centre + (rng.random((40, 3)) - 0.5) * 0.5).astype(np.float32)
            segments.append(Segment(i, mask, points, descriptors[i]))
        calls.append(segments)
    start = time.perf_counter()
    for keyframe, segments in enumerate(calls):
        instance_map.add_segments(keyframe, segments)
    return instance_map, time.perf_counter() - start, calls[0]


def percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "runs": len(samples)}


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_queries(instance_map, revisit, dim: int, rng: np.random.Generator, runs: int, top_k: int) -> dict:
    negatives = unit_rows(rng, 4, dim)
    queries = unit_rows(rng, runs, dim)
    index = QueryIndex(instance_map)
    _, matrix = instance_map.embedding_matrix()
    for query in queries[:10]:  # warm-up: BLAS threads, caches
        index.query(query, negatives, top_k=top_k, min_score=0.0)
    samples = {"cached": [], "after_keyframe": [], "uncached": [], "baseline": []}
    keyframe = 10**6
    for query in queries:
        samples["cached"].append(timed(lambda: index.query(query, negatives, top_k=top_k, min_score=0.0)))
        keyframe += 1
        instance_map.add_segments(keyframe, revisit[:20])
        samples["after_keyframe"].append(timed(lambda: index.query(query, negatives, top_k=top_k, min_score=0.0)))
        samples["uncached"].append(
            timed(lambda: query_instances(instance_map, query, negatives, top_k=top_k, min_score=0.0))
        )
        samples["baseline"].append(timed(lambda: np.argsort(-(matrix @ query))[:top_k]))
    result = {name: percentiles(values) for name, values in samples.items()}
    for name in ("cached", "after_keyframe", "uncached"):
        result[name]["ratio_p50_vs_baseline"] = result[name]["p50_ms"] / result["baseline"]["p50_ms"]
    return result


def time_goal_pose(instance_map: InstanceMap, rng: np.random.Generator, runs: int) -> dict:
    instance = instance_map.get(int(instance_map.instance_ids[len(instance_map) // 2]))
    trajectory = rng.random((1000, 3)) * 20.0
    obstacles = rng.random((200_000, 3)) * np.array([20.0, 20.0, 2.0])
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        compute_goal_pose(instance, trajectory=trajectory, obstacles=obstacles)
        samples.append(time.perf_counter() - start)
    return {**percentiles(samples), "trajectory": 1000, "obstacles": 200_000}


def time_labelling(instance_map: InstanceMap, dim: int, num_labels: int, rng: np.random.Generator) -> dict:
    table = {f"label {i}": row for i, row in enumerate(unit_rows(rng, num_labels, dim))}
    negatives = unit_rows(rng, 4, dim)

    def embed(texts):
        return np.stack([table[t] if t in table else negatives[hash(t) % 4] for t in texts])

    vocabulary = Vocabulary(embed, list(table))
    _, matrix = instance_map.embedding_matrix()
    start = time.perf_counter()
    label_instances(vocabulary, matrix)
    return {"seconds": time.perf_counter() - start, "labels": num_labels, "instances": len(matrix)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 1152])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--labels", type=int, default=1000, help="vocabulary size for the labelling timing (0 skips)")
    parser.add_argument("--json", default="bench_query.json")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    report = {"python": platform.python_version(), "numpy": np.__version__, "instances": args.instances, "dims": {}}
    for dim in args.dims:
        instance_map, build_seconds, revisit = build_map(args.instances, dim, rng)
        entry = {
            "build_seconds": build_seconds,
            "query": time_queries(instance_map, revisit, dim, rng, args.runs, args.top_k),
        }
        if dim == args.dims[0]:
            entry["goal_pose"] = time_goal_pose(instance_map, rng, 20)
            if args.labels:
                entry["labelling"] = time_labelling(instance_map, dim, args.labels, rng)
        report["dims"][str(dim)] = entry

    print(f"{args.instances} instances, top_k={args.top_k}, {args.runs} queries each (ms)")
    print(f"{'D':>6} {'path':>15} {'p50':>8} {'p99':>8} {'x base':>7}")
    for dim, entry in report["dims"].items():
        for name in ("cached", "after_keyframe", "uncached", "baseline"):
            q = entry["query"][name]
            ratio = q.get("ratio_p50_vs_baseline", 1.0)
            print(f"{dim:>6} {name:>15} {q['p50_ms']:>8.3f} {q['p99_ms']:>8.3f} {ratio:>7.2f}")
        print(f"{dim:>6} {'map build (s)':>15} {entry['build_seconds']:>8.2f}")
    first = report["dims"][str(args.dims[0])]
    goal = first["goal_pose"]
    print(f"goal pose (1000 trajectory points, 200k obstacles): p50 {goal['p50_ms']:.2f} ms, "
          f"p99 {goal['p99_ms']:.2f} ms")
    if "labelling" in first:
        lab = first["labelling"]
        print(f"labelling {lab['instances']} instances x {lab['labels']} labels: {lab['seconds']:.2f} s")
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
