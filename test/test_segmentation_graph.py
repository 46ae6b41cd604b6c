"""Graph-based segmentation, connected components and the mask-source factory."""

import numpy as np
import pytest

from ov_mapping.segmentation.components import label_components, remove_small_regions
from ov_mapping.segmentation.graph_segmentation import GraphSegmentationParams, segment_graph
from ov_mapping.segmentation.mask_sources import GraphMaskSource, Mask, make_mask_source


def two_colour_image(noise: int = 12) -> np.ndarray:
    rgb = np.zeros((90, 120, 3), np.uint8)
    rgb[:, :70] = (200, 40, 40)
    rgb[:, 70:] = (40, 60, 190)
    jitter = np.random.default_rng(0).integers(-noise, noise + 1, rgb.shape)
    return np.clip(rgb.astype(int) + jitter, 0, 255).astype(np.uint8)


def test_two_colour_image_splits_at_the_colour_edge():
    labels = segment_graph(two_colour_image())
    assert labels.shape == (90, 120)
    assert len(np.unique(labels)) == 2
    assert (labels[:, :68] == labels[0, 0]).all() and (labels[:, 72:] == labels[0, -1]).all()
    assert labels[0, 0] != labels[0, -1]


def test_depth_edge_splits_a_uniform_colour():
    rgb = np.full((60, 80, 3), 128, np.uint8)
    pointmap = np.zeros((30, 40, 3), np.float32)
    rows, cols = np.mgrid[0:30, 0:40]
    pointmap[..., 0], pointmap[..., 1] = cols * 0.01, rows * 0.01
    pointmap[..., 2] = np.where(cols < 20, 1.0, 2.0)
    pointmap[5, 5] = np.nan  # unknown points must not break or split anything
    assert len(np.unique(segment_graph(rgb))) == 1
    labels = segment_graph(rgb, pointmap)
    assert len(np.unique(labels)) == 2
    assert (labels[:, :40] == 0).all() and (labels[:, 40:] == 1).all()


def test_min_size_merges_specks():
    rgb = np.full((64, 64, 3), 100, np.uint8)
    rgb[10:16, 10:16] = 250  # 36 px speck
    assert len(np.unique(segment_graph(rgb, params=GraphSegmentationParams(min_size=50)))) == 1
    assert len(np.unique(segment_graph(rgb, params=GraphSegmentationParams(min_size=5, max_side=64, sigma=0.0)))) == 2


def test_thin_bands_along_edges_are_merged():
    rgb = np.full((80, 80, 3), 40, np.uint8)
    rgb[18:62, 18:62] = 120  # a 2 px band of in-between colour, as a blurred step edge leaves
    rgb[20:60, 20:60] = 200
    no_blur = dict(sigma=0.0, max_side=80, min_size=20)
    assert len(np.unique(segment_graph(rgb, params=GraphSegmentationParams(min_width=0.0, **no_blur)))) == 3
    labels = segment_graph(rgb, params=GraphSegmentationParams(min_width=2.5, **no_blur))
    assert len(np.unique(labels)) == 2
    assert len(np.unique(labels[20:60, 20:60])) == 1 and labels[0, 0] != labels[40, 40]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="uint8"):
        segment_graph(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="pointmap"):
        segment_graph(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    with pytest.raises(ValueError):
        GraphSegmentationParams(k=-1)


def test_label_components_and_cleanup():
    mask = np.zeros((20, 30), bool)
    mask[2:15, 2:20] = True
    mask[6:8, 6:8] = False  # 4 px hole
    mask[17:19, 25:27] = True  # 4 px island
    mask[2:4, 24:29] = True  # 10 px island
    labels, n = label_components(mask)
    assert n == 3 and (labels > 0).sum() == mask.sum()
    u_shape = np.zeros((5, 5), bool)
    u_shape[:, 0] = u_shape[:, 4] = u_shape[4] = True  # joined only through the bottom row
    assert label_components(u_shape)[1] == 1
    clean = remove_small_regions(mask, 6)
    assert clean[6:8, 6:8].all() and not clean[17:19, 25:27].any() and clean[2:4, 24:29].all()


def test_graph_source_masks_partition_the_image():
    source = make_mask_source("graph", k=300.0, min_size=100)
    assert isinstance(source, GraphMaskSource)
    masks = source.generate(two_colour_image())
    assert len(masks) == 2 and all(isinstance(m, Mask) and m.score == 1.0 for m in masks)
    assert np.array_equal(np.sum([m.mask for m in masks], axis=0), np.ones((90, 120)))
    assert source.generate(np.zeros((0, 5, 3), np.uint8)) == []


def test_factory_auto_falls_back_and_logs(tmp_path, caplog):
    caplog.set_level("INFO")
    source = make_mask_source("auto", sam_weights="sam_vit_b", sam_cache_dir=str(tmp_path), graph_min_size=50)
    assert source.name == "graph" and source.params.min_size == 50
    assert "no SAM weights" in caplog.text and "mask source: graph" in caplog.text
    with pytest.raises(FileNotFoundError, match="graph"):
        make_mask_source("sam", weights="sam_vit_b", cache_dir=str(tmp_path))


def test_factory_rejects_unknown_names_and_params():
    with pytest.raises(ValueError, match="sam, graph, auto"):
        make_mask_source("slic")
    with pytest.raises(ValueError, match="unknown graph"):
        make_mask_source("graph", kk=3)
    with pytest.raises(ValueError, match="sam_ or graph_"):
        make_mask_source("auto", k=3)
