"""Score a semantic map against a labelled scene: per-class IoU / Acc over map points, and text-query accuracy.

Pure scoring, no ROS: ``ov-mapping demo --semantic-check`` drives the graph, then hands the saved map's labelled
points and the query answers here.

- Segmentation: each map point's label (an index into the vocabulary, which holds the scene's class names) becomes
  a class id, is transferred to the ground-truth cloud by nearest neighbour, and scored with the published protocol
  (``evaluation.semantics``). A shuffled-label control permutes which class each vocabulary entry stands for: a map
  whose labels carry information scores far above it.
- Queries: every object instance is asked for twice, by class ("chair") and by colour and class ("red chair"). A
  class query is right when the top instance's points are mostly of that class; a colour query when they are mostly
  that very instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ov_mapping.datasets.base import LabeledCloud, SceneMetadata
from ov_mapping.evaluation.semantics import SemanticMetrics, evaluate_semantics, transfer_labels

ROOM_CLASSES = ("floor", "wall", "ceiling")


@dataclass(frozen=True)
class QueryCase:
    text: str
    kind: str  # "class" or "colour"
    instance_id: int  # the instance named (for "class", any instance of its class is right)
    class_id: int


def scene_vocabulary(metadata: SceneMetadata) -> list[str]:
    """The class names present in the scene (no "void"), in class-id order."""
    present = sorted(set(metadata.instance_classes.values()))
    return [metadata.class_names[c] for c in present]


def query_cases(metadata: SceneMetadata) -> list[QueryCase]:
    """Two queries per object instance (room surfaces excluded): its class, and its colour and class."""
    cases = []
    for instance, class_id in sorted(metadata.instance_classes.items()):
        name = metadata.class_names[class_id]
        if name in ROOM_CLASSES:
            continue
        cases.append(QueryCase(name, "class", instance, class_id))
        colour = metadata.instance_colours.get(instance)
        if colour:
            cases.append(QueryCase(f"{colour} {name}", "colour", instance, class_id))
    return cases


def vocabulary_to_class_ids(label_ids: np.ndarray, vocabulary: Sequence[str], metadata: SceneMetadata) -> np.ndarray:
    """Map label ids (indices into ``vocabulary``, -1 = none) to the scene's class ids (-1 = none or unknown)."""
    lookup = np.array([metadata.class_names.index(v) if v in metadata.class_names else -1 for v in vocabulary] + [-1],
                      dtype=np.int64)
    label_ids = np.asarray(label_ids, dtype=np.int64)
    if label_ids.size and (label_ids.max() >= len(vocabulary) or label_ids.min() < -1):
        raise ValueError(f"label ids must lie in -1..{len(vocabulary) - 1}")
    return lookup[label_ids]  # -1 indexes the trailing "none"


def score_segmentation(points: np.ndarray, label_ids: np.ndarray, vocabulary: Sequence[str], truth: LabeledCloud,
                       metadata: SceneMetadata, max_distance: float = 0.1) -> SemanticMetrics:
    """mIoU / mAcc of the map's labels on the ground-truth cloud (classes present in the truth)."""
    predicted = vocabulary_to_class_ids(label_ids, vocabulary, metadata)
    return evaluate_semantics(truth.points, truth.class_ids, points, predicted, max_distance=max_distance,
                              class_names=metadata.class_names, ignore_label=0)


def shuffled_control(label_ids: np.ndarray, vocabulary_size: int, seed: int = 0) -> np.ndarray:
    """The same labels with the vocabulary entries permuted (a derangement: no entry keeps its meaning)."""
    rng = np.random.default_rng(seed)
    if vocabulary_size < 2:
        raise ValueError("a shuffled control needs at least two labels")
    while True:
        permutation = rng.permutation(vocabulary_size)
        if not np.any(permutation == np.arange(vocabulary_size)):
            break
    label_ids = np.asarray(label_ids)
    return np.where(label_ids >= 0, permutation[np.clip(label_ids, 0, None)], -1)


def judge_answer(case: QueryCase, answer_points: np.ndarray, truth: LabeledCloud) -> bool:
    """Whether the top answer's points are mostly what the query named."""
    if len(answer_points) == 0:
        return False
    instance = transfer_labels(truth.points, truth.instance_ids, answer_points, None, missing_label=-1)
    majority = np.bincount(instance[instance >= 0]).argmax() if (instance >= 0).any() else -1
    if case.kind == "colour":
        return int(majority) == case.instance_id
    classes = transfer_labels(truth.points, truth.class_ids, answer_points, None, missing_label=-1)
    return (classes >= 0).any() and int(np.bincount(classes[classes >= 0]).argmax()) == case.class_id


def query_accuracy(cases: Sequence[QueryCase], answers: Sequence[np.ndarray], truth: LabeledCloud) -> dict:
    """Top-1 accuracy by query kind, and the cases answered wrongly."""
    if len(cases) != len(answers):
        raise ValueError(f"{len(cases)} cases but {len(answers)} answers")
    right = [judge_answer(case, points, truth) for case, points in zip(cases, answers)]
    result = {"wrong": [case.text for case, ok in zip(cases, right) if not ok]}
    for kind in ("class", "colour"):
        marks = [ok for case, ok in zip(cases, right) if case.kind == kind]
        result[f"top1_{kind}"] = float(np.mean(marks)) if marks else None
    result["top1_all"] = float(np.mean(right)) if right else None
    return result
