"""The whole graph end to end, as `make demo` runs it: player -> reconstruction -> segmentation -> map server, each its
own process over DDS, on the synthetic scene; then the saved map, PLY, picture and report."""

import json

import numpy as np
from PIL import Image

from ov_mapping.datasets.synthetic import SyntheticSequence
from ov_mapping.mapping.persistence import load_map
from ov_mapping.tools.demo import run_demo


def test_demo_maps_the_synthetic_room(tmp_path):
    assert run_demo("synthetic", tmp_path, rate=2.0, frames=30, timeout=150) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames_in"] == 30 and report["dropped_frames"] == 0
    assert report["keyframes"] > 5 and report["keyframes_integrated"] == report["keyframes"]
    assert report["points"] > 20_000
    picture = np.asarray(Image.open(tmp_path / "map.png"))
    assert picture.ndim == 3 and picture.std() > 10  # something was drawn
    assert (tmp_path / "map.ply").stat().st_size > 20 * report["points"]
    # The mapped points lie on the scene's surfaces (ground-truth poses from TF).
    loaded = load_map(tmp_path / "map.npz").voxel_map
    truth = SyntheticSequence(num_frames=30, seed=0).ground_truth_cloud(points_per_m2=4000)
    import open3d as o3d

    tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(truth.points.astype(float))))
    positions = loaded.to_arrays().positions[::50]
    distances = [np.sqrt(tree.search_knn_vector_3d(p.astype(float), 1)[2][0]) for p in positions]
    assert np.median(distances) < 0.02
