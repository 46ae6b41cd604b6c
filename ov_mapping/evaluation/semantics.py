"""3D semantic segmentation metrics, the protocol of Ov3R / OV-NeRF evaluations on labelled point clouds.

Protocol:
1. Predictions live on the predicted cloud; each ground-truth point takes the label of its nearest predicted point
   (exact nearest neighbour with open3d's ``core.nns.NearestNeighborSearch``). With ``max_distance``, a ground-truth
   point farther than that from every prediction counts as unpredicted.
2. Ground-truth points labelled ``ignore_label`` are left out. The confusion matrix ``C[g, p]`` counts points of
   ground-truth class g predicted as class p, with an extra last column for unpredicted / out-of-range predictions
   (they are misses of class g and false positives of no class).
3. Per class c: ``IoU_c = TP / (TP + FP + FN)``, ``Acc_c = TP / (TP + FN)`` (class recall).
   ``mIoU`` and ``mAcc`` average over the classes present in the ground truth; ``f-mIoU`` / ``f-mAcc`` weight
   each class by its share of ground-truth points; ``overall accuracy`` = correct / evaluated points.

Inputs: PLY (ascii or binary, vertex x y z plus an integer label property) or NPZ (``points`` (N, 3) and a label
array). ``main(argv)`` is the command-line entry: it prints a table and writes the metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

LABEL_KEYS = ("label", "labels", "semantic_label", "semantic", "class", "category_id")
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}


# --------------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class SemanticMetrics:
    """Per-class and summary metrics; per-class arrays have one entry per class id 0..K-1 (NaN if absent in GT)."""

    confusion: np.ndarray  # (K, K + 1) int64; last column = unpredicted
    iou: np.ndarray  # (K,) float64
    acc: np.ndarray  # (K,) float64
    support: np.ndarray  # (K,) int64 ground-truth points per class
    miou: float
    macc: float
    fmiou: float
    facc: float
    overall_acc: float
    class_names: tuple

    def to_dict(self) -> dict:
        def number(x: float) -> Optional[float]:
            return None if not np.isfinite(x) else float(x)

        return {
            "mIoU": number(self.miou),
            "mAcc": number(self.macc),
            "f-mIoU": number(self.fmiou),
            "f-mAcc": number(self.facc),
            "overall_acc": number(self.overall_acc),
            "evaluated_points": int(self.support.sum()),
            "classes": [
                {"id": c, "name": self.class_names[c], "support": int(self.support[c]), "IoU": number(self.iou[c]),
                 "Acc": number(self.acc[c])}
                for c in range(len(self.support))
            ],
        }


def _check_labels(name: str, labels: np.ndarray, n: Optional[int] = None) -> np.ndarray:
    labels = np.asarray(labels)
    # PLY files often store labels as whole floats; accept those.
    whole_floats = np.issubdtype(labels.dtype, np.floating) and bool(np.all(labels == np.round(labels)))
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer) or whole_floats):
        raise ValueError(f"{name} must be a 1-D array of integer class ids, got shape {labels.shape} {labels.dtype}")
    if n is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries, expected {n}")
    return labels.astype(np.int64)


def _check_cloud(name: str, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
        raise ValueError(f"{name} must be a numeric (N, 3) array, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return points.astype(np.float64)


def compute_confusion(
    gt_labels: np.ndarray, pred_labels: np.ndarray, num_classes: int, ignore_label: int = -1
) -> np.ndarray:
    """Confusion matrix (K, K + 1) int64 of per-point labels (N,); see the module docstring.

    Raises ValueError if a ground-truth label other than ``ignore_label`` lies outside [0, K).
    """
    gt = _check_labels("gt_labels", gt_labels)
    pred = _check_labels("pred_labels", pred_labels, len(gt))
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    keep = gt != ignore_label
    gt, pred = gt[keep], pred[keep]
    bad = (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise ValueError(
            f"ground-truth labels {np.unique(gt[bad])[:10].tolist()} lie outside [0, {num_classes}) "
            f"and are not the ignore label {ignore_label}"
        )
    pred = np.where((pred < 0) | (pred >= num_classes), num_classes, pred)
    flat = np.bincount(gt * (num_classes + 1) + pred, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1).astype(np.int64)


def compute_metrics(confusion: np.ndarray, class_names: Optional[Sequence[str]] = None) -> SemanticMetrics:
    """IoU / Acc per class and mIoU, mAcc, f-mIoU, f-mAcc, overall accuracy from a (K, K + 1) confusion matrix."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[1] != confusion.shape[0] + 1 or confusion.shape[0] < 1:
        raise ValueError(f"confusion must have shape (K, K + 1), got {confusion.shape}")
    k = confusion.shape[0]
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(k))
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    tp = np.diag(confusion[:, :k]).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion[:, :k].sum(axis=0)
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / (support + predicted - tp), np.nan)
        acc = np.where(present, tp / support, np.nan)
    total = support.sum()
    if total == 0:
        nan = float("nan")
        return SemanticMetrics(confusion, iou, acc, support, nan, nan, nan, nan, nan, names)
    freq = support / total
    return SemanticMetrics(
        confusion=confusion,
        iou=iou,
        acc=acc,
        support=support,
        miou=float(np.mean(iou[present])),
        macc=float(np.mean(acc[present])),
        fmiou=float(np.sum(freq[present] * iou[present])),
        facc=float(np.sum(freq[present] * acc[present])),
        overall_acc=float(tp.sum() / total),
        class_names=names,
    )


def transfer_labels(
    source_points: np.ndarray,
    source_labels: np.ndarray,
    target_points: np.ndarray,
    max_distance: Optional[float] = None,
    missing_label: int = -1,
) -> np.ndarray:
    """Label (M,) int64 of each target point (M, 3) = label of its nearest source point (N, 3).

    Targets farther than ``max_distance`` (metres) from every source, or all targets when there is no source,
    get ``missing_label``.
    """
    source = _check_cloud("source_points", source_points)
    labels = _check_labels("source_labels", source_labels, len(source))
    target = _check_cloud("target_points", target_points)
    if max_distance is not None and not (np.isfinite(max_distance) and max_distance >= 0):
        raise ValueError(f"max_distance must be a finite number >= 0, got {max_distance}")
    out = np.full(len(target), missing_label, dtype=np.int64)
    if len(source) == 0 or len(target) == 0:
        return out
    import open3d as o3d  # heavy import, only needed here

    search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(source))
    search.knn_index()
    index, squared = search.knn_search(o3d.core.Tensor(target), 1)
    index, squared = index.numpy()[:, 0], squared.numpy()[:, 0]
    near = np.ones(len(target), dtype=bool) if max_distance is None else squared <= max_distance**2
    out[near] = labels[index[near]]
    return out


def evaluate_semantics(
    gt_points: np.ndarray,
    gt_labels: np.ndarray,
    pred_points: np.ndarray,
    pred_labels: np.ndarray,
    num_classes: Optional[int] = None,
    ignore_label: int = -1,
    max_distance: Optional[float] = None,
    class_names: Optional[Sequence[str]] = None,
) -> SemanticMetrics:
    """Transfer predictions onto the ground-truth geometry by nearest neighbour and score them.

    ``num_classes`` defaults to (largest label in either cloud) + 1, or ``len(class_names)`` when names are given.
    """
    gt_points = _check_cloud("gt_points", gt_points)
    gt_labels = _check_labels("gt_labels", gt_labels, len(gt_points))
    pred_labels = _check_labels("pred_labels", pred_labels)
    if num_classes is None:
        if class_names is not None:
            num_classes = len(class_names)
        else:
            largest = max(int(gt_labels.max(initial=-1)), int(pred_labels.max(initial=-1)))
            num_classes = max(1, largest + 1)
    transferred = transfer_labels(pred_points, pred_labels, gt_points, max_distance, missing_label=-1)
    return compute_metrics(compute_confusion(gt_labels, transferred, num_classes, ignore_label), class_names)


# --------------------------------------------------------------------------------------------------- files


def _read_ply(path: Path) -> dict:
    """The vertex properties of a PLY file as {name: (N,) array}; the vertex element must come first."""
    with open(path, "rb") as handle:
        if handle.readline().strip() != b"ply":
            raise ValueError(f"{path} is not a PLY file")
        fmt, count, properties, seen_vertex = None, 0, [], False
        while True:
            line = handle.readline()
            if not line:
                raise ValueError(f"{path}: PLY header has no end_header")
            words = line.decode("ascii", errors="replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                if not seen_vertex and words[1] != "vertex":
                    raise ValueError(f"{path}: the first PLY element must be 'vertex', got {words[1]!r}")
                if words[1] == "vertex":
                    seen_vertex, count = True, int(words[2])
                else:
                    seen_vertex = None  # later elements are not read
            elif words[0] == "property" and seen_vertex is True:
                if words[1] == "list":
                    raise ValueError(f"{path}: list properties on vertices are not supported")
                if words[1] not in _PLY_TYPES:
                    raise ValueError(f"{path}: unknown PLY property type {words[1]!r}")
                properties.append((words[2], _PLY_TYPES[words[1]]))
        if not properties:
            raise ValueError(f"{path}: no vertex properties")
        if fmt == "ascii":
            rows = [handle.readline().split() for _ in range(count)]
            if any(len(row) < len(properties) for row in rows):
                raise ValueError(f"{path}: truncated ASCII vertex data")
            table = np.array([row[: len(properties)] for row in rows], dtype=np.float64).reshape(count, len(properties))
            return {name: table[:, i].astype(kind) for i, (name, kind) in enumerate(properties)}
        if fmt not in ("binary_little_endian", "binary_big_endian"):
            raise ValueError(f"{path}: unsupported PLY format {fmt!r}")
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, order + kind) for name, kind in properties])
        data = np.frombuffer(handle.read(dtype.itemsize * count), dtype=dtype)
        if len(data) != count:
            raise ValueError(f"{path}: truncated binary vertex data ({len(data)} of {count} vertices)")
        return {name: data[name] for name, _ in properties}


def load_labelled_cloud(path: str | Path, label_key: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) float64 and labels (N,) int64 from a PLY (x, y, z + label property) or NPZ (``points`` + label).

    ``label_key`` defaults to the first of LABEL_KEYS present.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.suffix.lower() == ".ply":
        fields = _read_ply(path)
        missing = [axis for axis in "xyz" if axis not in fields]
        if missing:
            raise ValueError(f"{path}: vertex properties lack {missing}")
        points = np.stack([fields["x"], fields["y"], fields["z"]], axis=1)
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            fields = {key: archive[key] for key in archive.files}
        if "points" not in fields:
            raise ValueError(f"{path}: no 'points' array (has {sorted(fields)})")
        points = fields["points"]
    else:
        raise ValueError(f"{path}: unsupported file type (expected .ply or .npz)")
    keys = [label_key] if label_key else [key for key in LABEL_KEYS if key in fields]
    if not keys or keys[0] not in fields:
        raise ValueError(f"{path}: no label field {label_key or LABEL_KEYS} (has {sorted(fields)})")
    points = _check_cloud(f"{path} points", points)
    return points, _check_labels(f"{path} {keys[0]}", fields[keys[0]], len(points))


def format_table(metrics: SemanticMetrics) -> str:
    """A plain-text table of per-class IoU / Acc (percent) and the summary metrics."""
    width = max([5] + [len(name) for name in metrics.class_names])
    lines = [f"{'class':<{width}} {'points':>9} {'IoU':>7} {'Acc':>7}"]
    for c, name in enumerate(metrics.class_names):
        if metrics.support[c] == 0:
            continue
        iou, acc = 100 * metrics.iou[c], 100 * metrics.acc[c]
        lines.append(f"{name:<{width}} {metrics.support[c]:>9d} {iou:>7.2f} {acc:>7.2f}")
    lines.append("")
    for label, value in (("mIoU", metrics.miou), ("mAcc", metrics.macc), ("f-mIoU", metrics.fmiou),
                         ("f-mAcc", metrics.facc), ("overall acc", metrics.overall_acc)):
        lines.append(f"{label:<12} {100 * value:7.2f}")
    return "\n".join(lines)


def _read_class_names(path: str) -> list[str]:
    text = Path(path).read_text()
    if path.endswith(".json"):
        names = json.loads(text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path} must hold a JSON list of class names")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: evaluate a predicted labelled cloud against a ground-truth one; 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(description="Per-point semantic segmentation metrics (mIoU, mAcc, f-mIoU, f-mAcc)")
    parser.add_argument("--gt", required=True, help="ground-truth labelled cloud (.ply or .npz)")
    parser.add_argument("--pred", required=True, help="predicted labelled cloud (.ply or .npz)")
    parser.add_argument("--gt-label-key", default=None, help=f"label field of --gt (default: first of {LABEL_KEYS})")
    parser.add_argument("--pred-label-key", default=None, help="label field of --pred")
    parser.add_argument("--ignore-label", type=int, default=-1, help="ground-truth label left out (default -1)")
    parser.add_argument("--num-classes", type=int, default=None, help="number of classes (default: from the data)")
    parser.add_argument("--max-distance", type=float, default=None, help="metres; farther GT points count unpredicted")
    parser.add_argument("--class-names", default=None, help="JSON list or text file with one class name per line")
    parser.add_argument("--json", default=None, help="write the metrics here as JSON")
    args = parser.parse_args(argv)
    try:
        names = _read_class_names(args.class_names) if args.class_names else None
        gt_points, gt_labels = load_labelled_cloud(args.gt, args.gt_label_key)
        pred_points, pred_labels = load_labelled_cloud(args.pred, args.pred_label_key)
        metrics = evaluate_semantics(
            gt_points, gt_labels, pred_points, pred_labels,
            num_classes=args.num_classes, ignore_label=args.ignore_label, max_distance=args.max_distance,
            class_names=names,
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(metrics))
    if args.json:
        result = {"gt": str(args.gt), "pred": str(args.pred), **metrics.to_dict()}
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
