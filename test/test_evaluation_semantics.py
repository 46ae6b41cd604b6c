"""Semantic metrics: hand-computed toy example, perfect prediction, NN transfer, file formats, CLI."""

import json

import numpy as np
import pytest

from ov_mapping.evaluation.semantics import (
    compute_confusion,
    compute_metrics,
    evaluate_semantics,
    load_labelled_cloud,
    main,
    transfer_labels,
)

# Ten points on a line 1 m apart; GT classes 0/1/2 and one ignored point.
POINTS = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=1)
GT = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, -1])
PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 7, 0])  # 7 is no class: a miss of class 2, a false positive of none


def test_toy_example_matches_hand_computed_values():
    metrics = evaluate_semantics(POINTS, GT, POINTS, PRED, num_classes=3)
    assert metrics.confusion.tolist() == [[3, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 1]]
    # class 0: TP 3, FN 1, FP 1 -> IoU 3/5; class 1: TP 2, FN 1, FP 1 -> 2/4; class 2: TP 1, FN 1, FP 0 -> 1/2.
    assert metrics.iou.tolist() == pytest.approx([0.6, 0.5, 0.5])
    assert metrics.acc.tolist() == pytest.approx([0.75, 2 / 3, 0.5])
    assert metrics.miou == pytest.approx(1.6 / 3)
    assert metrics.macc == pytest.approx((0.75 + 2 / 3 + 0.5) / 3)
    assert metrics.fmiou == pytest.approx((4 * 0.6 + 3 * 0.5 + 2 * 0.5) / 9)
    assert metrics.facc == pytest.approx((4 * 0.75 + 3 * 2 / 3 + 2 * 0.5) / 9)
    assert metrics.overall_acc == pytest.approx(6 / 9)


def test_perfect_prediction_scores_one_everywhere():
    rng = np.random.default_rng(0)
    points = rng.random((500, 3))
    labels = rng.integers(0, 6, 500)
    metrics = evaluate_semantics(points, labels, points, labels)
    for value in (metrics.miou, metrics.macc, metrics.fmiou, metrics.facc, metrics.overall_acc):
        assert value == pytest.approx(1.0)


def test_classes_absent_from_ground_truth_are_not_averaged():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 3, 1, 1])  # class 3 exists only in the prediction
    metrics = compute_metrics(compute_confusion(gt, pred, num_classes=4))
    assert np.isnan(metrics.iou[2]) and np.isnan(metrics.iou[3])
    assert metrics.miou == pytest.approx((0.5 + 1.0) / 2)


def test_predictions_are_transferred_by_nearest_neighbour():
    predicted_points = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    predicted_labels = np.array([1, 2])
    targets = np.array([[1.0, 0, 0], [4.9, 0, 0], [5.1, 0, 0], [30.0, 0, 0]])
    assert transfer_labels(predicted_points, predicted_labels, targets).tolist() == [1, 1, 2, 2]
    assert transfer_labels(predicted_points, predicted_labels, targets, max_distance=5.0).tolist() == [1, 1, 2, -1]
    assert transfer_labels(np.zeros((0, 3)), np.zeros(0, int), targets).tolist() == [-1] * 4
    # A sparser predicted cloud on the same geometry: every GT point takes its nearest prediction.
    metrics = evaluate_semantics(POINTS[:9], GT[:9], POINTS[::2] + 0.1, GT[::2], num_classes=3)
    assert metrics.confusion[:, :3].sum() == 9


def test_far_ground_truth_counts_as_unpredicted():
    metrics = evaluate_semantics(POINTS[:4], GT[:4], POINTS[:2], GT[:2], num_classes=1, max_distance=0.5)
    assert metrics.confusion.tolist() == [[2, 2]]
    assert metrics.iou[0] == pytest.approx(0.5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"ground-truth labels \[5\] lie outside \[0, 3\)"):
        compute_confusion(np.array([0, 5]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="expected 3"):
        evaluate_semantics(POINTS[:3], GT[:2], POINTS, PRED)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_semantics(np.full((2, 3), np.nan), np.zeros(2, int), POINTS, PRED)
    with pytest.raises(ValueError, match="integer class ids"):
        compute_confusion(np.array([0.5, 1.0]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match=r"\(K, K \+ 1\)"):
        compute_metrics(np.zeros((3, 3)))


def write_ply(path, points, labels, binary):
    header = [
        "ply",
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        "comment test cloud",
        f"element vertex {len(points)}",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property int label",
        "element face 0",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode())
        if binary:
            dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("label", "<i4")])
            rows = np.zeros(len(points), dtype=dtype)
            rows["x"], rows["y"], rows["z"], rows["label"] = *points.T, labels
            handle.write(rows.tobytes())
        else:
            for p, label in zip(points, labels):
                handle.write(f"{p[0]} {p[1]} {p[2]} 200 {label}\n".encode())


@pytest.mark.parametrize("binary", [False, True])
def test_ply_files_are_read(tmp_path, binary):
    path = tmp_path / "cloud.ply"
    write_ply(path, POINTS, GT, binary)
    points, labels = load_labelled_cloud(path)
    assert np.allclose(points, POINTS) and labels.tolist() == GT.tolist()


def test_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    np.savez(tmp_path / "gt.npz", points=POINTS, labels=GT)
    write_ply(tmp_path / "pred.ply", POINTS, PRED, binary=True)
    (tmp_path / "names.txt").write_text("floor\nchair\ntable\n")
    out = tmp_path / "metrics.json"
    code = main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "pred.ply"),
                 "--class-names", str(tmp_path / "names.txt"), "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "chair" in printed and "53.33" in printed  # mIoU in percent
    result = json.loads(out.read_text())
    assert result["mIoU"] == pytest.approx(1.6 / 3)
    assert [c["name"] for c in result["classes"]] == ["floor", "chair", "table"]
    assert result["classes"][0]["IoU"] == pytest.approx(0.6)


def test_cli_reports_bad_files(tmp_path, capsys):
    np.savez(tmp_path / "gt.npz", points=POINTS, other=GT)
    assert main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "gt.npz")]) == 2
    assert "no label field" in capsys.readouterr().err
    assert main(["--gt", str(tmp_path / "missing.ply"), "--pred", str(tmp_path / "gt.npz")]) == 2
