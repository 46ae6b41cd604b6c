import numpy as np
import pytest

from ov_mapping.datasets.base import LabeledCloud, SceneMetadata
from ov_mapping.evaluation.semantic_check import (
    QueryCase, judge_answer, query_accuracy, query_cases, scene_vocabulary, score_segmentation, shuffled_control,
    vocabulary_to_class_ids,
)

METADATA = SceneMetadata(class_names=("void", "floor", "chair", "table"), instance_classes={1: 1, 7: 2, 8: 2, 9: 3},
                         instance_colours={7: "red", 8: "blue", 9: "black"}, colour_rgb={})


def _truth() -> LabeledCloud:
    rng = np.random.default_rng(0)
    blocks = [(1, 1, [0, 0, 0]), (7, 2, [3, 0, 0]), (8, 2, [0, 3, 0]), (9, 3, [3, 3, 0])]
    points = np.concatenate([rng.uniform(0, 1, (200, 3)) + c for _, _, c in blocks]).astype(np.float32)
    instances = np.repeat([b[0] for b in blocks], 200).astype(np.int32)
    classes = np.repeat([b[1] for b in blocks], 200).astype(np.int32)
    return LabeledCloud(points, np.zeros((800, 3), np.uint8), classes, instances)


def test_vocabulary_and_query_cases_come_from_the_scene():
    assert scene_vocabulary(METADATA) == ["floor", "chair", "table"]
    texts = [(c.text, c.kind) for c in query_cases(METADATA)]
    assert ("chair", "class") in texts and ("red chair", "colour") in texts and ("black table", "colour") in texts
    assert not any(t == "floor" for t, _ in texts)  # room surfaces are not objects to go to


def test_perfect_labels_score_one_and_the_shuffled_control_far_less():
    truth = _truth()
    vocabulary = ["floor", "chair", "table"]
    label_ids = np.array([vocabulary.index(METADATA.class_names[c]) for c in truth.class_ids])
    metrics = score_segmentation(truth.points, label_ids, vocabulary, truth, METADATA)
    assert metrics.miou == pytest.approx(1.0) and metrics.macc == pytest.approx(1.0)
    control = score_segmentation(truth.points, shuffled_control(label_ids, 3), vocabulary, truth, METADATA)
    assert control.miou < 0.2
    assert (shuffled_control(np.array([-1, 0]), 3)[0]) == -1
    with pytest.raises(ValueError):
        vocabulary_to_class_ids(np.array([3]), vocabulary, METADATA)


def test_query_answers_are_judged_by_what_their_points_are():
    truth = _truth()
    red = truth.points[truth.instance_ids == 7]
    blue = truth.points[truth.instance_ids == 8]
    assert judge_answer(QueryCase("chair", "class", 7, 2), blue, truth)  # any chair answers "chair"
    assert not judge_answer(QueryCase("red chair", "colour", 7, 2), blue, truth)
    assert judge_answer(QueryCase("red chair", "colour", 7, 2), red, truth)
    assert not judge_answer(QueryCase("chair", "class", 7, 2), np.zeros((0, 3)), truth)
    result = query_accuracy([QueryCase("red chair", "colour", 7, 2), QueryCase("chair", "class", 7, 2)],
                            [blue, blue], truth)
    assert result["top1_colour"] == 0.0 and result["top1_class"] == 1.0 and result["wrong"] == ["red chair"]
