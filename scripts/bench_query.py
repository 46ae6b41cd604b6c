#!/usr/bin/env python3
"""Benchmark: text-query latency over a large instance map (p50 / p99), plus goal pose and vocabulary labelling.

Builds an InstanceMap of N instances (random unit descriptors, separate positions) through the normal
``add_segments`` path, then times three query paths over many random queries (the text encoder is not included):
- ``cached``: ``QueryIndex.query`` with the map unchanged since the last query (the steady state);
- ``after_keyframe``: the same, right after an ``add_segments`` call that changed 20 instances (untimed);
- ``uncached``: ``query_instances``, which also computes every instance's similarity to the negatives.
The baseline, run in the same process, is a bare cosine matvec + full argsort over the same matrix (no negatives,
no validation), so the ratios show what the normalisation and checks cost. Prints a table and writes JSON.

``--store`` times ``MapStore.query`` end to end instead (ranking, records, goal poses against the map, each hit's
voxels; the stand-in text encoder is a table look-up, so embedding costs ~nothing): N instances on a floor of
~0.64 M voxels, ~1 M voxels in all, a 4096-position trajectory.

    python scripts/bench_query.py --instances 10000 --dims 512 1152 --json bench_query.json
    python scripts/bench_query.py --store --instances 10000 --json bench_store.json
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
from ov_mapping.mapping.map_store import MapStore  # noqa: E402
from ov_mapping.mapping.query import QueryIndex, compute_goal_pose, query_instances  # noqa: E402
from ov_mapping.mapping.vocabulary import Vocabulary, label_instances  # noqa: E402
from ov_mapping.mapping.voxel_map import VoxelMap  # noqa: E402


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


def build_store(num_instances: int, dim: int, rng: np.random.Generator) -> tuple[MapStore, list[str], float]:
    """A MapStore over a 40 m x 40 m floor (5 cm voxels) with ``num_instances`` 20 cm objects 0.3-0.7 m up on a
    grid 0.4 m apart (so goal candidates often collide), and the texts whose embeddings are the instances'.

    The parts are built with the public InstanceMap / VoxelMap APIs and installed into the store directly:
    integrating ~10k synthetic keyframes would take minutes and time nothing ``query`` does.
    """
    side = int(np.ceil(np.sqrt(num_instances)))
    spacing, size = 0.4, 0.05
    descriptors = unit_rows(rng, num_instances, dim)
    texts = [f"object {i}" for i in range(num_instances)]
    table = dict(zip(texts, descriptors))
    negatives = unit_rows(rng, 4, dim)

    def embed(batch):
        return np.stack([table[t] if t in table else negatives[sum(map(ord, t)) % 4] for t in batch])

    instances = InstanceMap(max_instances=num_instances, merge_every=0)
    clouds = []
    mask = np.zeros((2, 2), dtype=bool)
    start = time.perf_counter()
    for first in range(0, num_instances, 100):
        segments = []
        for i in range(first, min(num_instances, first + 100)):
            centre = np.array([(i % side) * spacing, (i // side) * spacing, 0.3 + 0.4 * rng.random()])
            points = (centre + (rng.random((40, 3)) - 0.5) * 0.2).astype(np.float32)
            clouds.append(points)
            segments.append(Segment(i, mask, points, descriptors[i]))
        instances.add_segments(first // 100, segments)
    extent = side * spacing
    grid = np.arange(-1.0, extent + 1.0, size) + size / 2
    floor = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    floor = np.column_stack([floor, np.full(len(floor), 0.01)])
    voxel_map = VoxelMap(size)
    objects = np.concatenate(clouds).astype(np.float64)
    cloud = np.concatenate([floor, objects])
    voxel_map.integrate(cloud, np.full(cloud.shape, 128, dtype=np.uint8))
    for i, points in zip(instances.instance_ids.tolist(), clouds):
        found = voxel_map.lookup(points.astype(np.float64))
        voxel_map.set_fields(found[found >= 0], instance_ids=i)
    store = MapStore(size, embed_text=embed, query_min_observations=1)
    with store.lock:  # the store's own state, as integrate_segmented would have left it
        store._map, store._instances = voxel_map, instances
        store._index = QueryIndex(instances)
        store._trajectory = np.column_stack([rng.random((4096, 2)) * extent, np.full(4096, 1.2)])
    return store, texts, time.perf_counter() - start


def time_store_queries(num_instances: int, dim: int, runs: int, top_k: int, rng: np.random.Generator) -> dict:
    store, texts, build_seconds = build_store(num_instances, dim, rng)
    picks = rng.integers(0, len(texts), runs + 10)
    for i in picks[:10]:  # warm-up: BLAS threads, caches, the records' geometry of a few instances
        store.query(texts[i], top_k=top_k)
    samples, hits = [], 0
    for i in picks[10:]:
        start = time.perf_counter()
        answer = store.query(texts[i], top_k=top_k)
        samples.append(time.perf_counter() - start)
        hits += len(answer)
    return {**percentiles(samples), "voxels": len(store), "instances": store.num_instances, "dim": dim,
            "top_k": top_k, "mean_hits": hits / runs, "build_seconds": build_seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 1152])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--labels", type=int, default=1000, help="vocabulary size for the labelling timing (0 skips)")
    parser.add_argument("--json", default="bench_query.json")
    parser.add_argument("--store", action="store_true", help="time MapStore.query end to end (first --dims only)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    if args.store:
        result = time_store_queries(args.instances, args.dims[0], args.runs, args.top_k, rng)
        print(f"MapStore.query, {result['instances']} instances, {result['voxels']} voxels, D={result['dim']}, "
              f"top_k={args.top_k} ({result['mean_hits']:.1f} hits), goals + records + points, "
              f"{result['runs']} queries: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
        Path(args.json).write_text(json.dumps({"python": platform.python_version(), "numpy": np.__version__,
                                               "store_query": result}, indent=2))
        print(f"wrote {args.json}")
        return 0
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
