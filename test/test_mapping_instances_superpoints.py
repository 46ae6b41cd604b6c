"""Boundary-aware superpoints never cross a 2D mask boundary; superpoint refinement of instance labels."""

import numpy as np
import pytest

from ov_mapping.mapping.superpoints import (
    MaskObservations,
    compute_superpoints,
    estimate_normals,
    refine_with_superpoints,
)

SPACING = 0.05


def flat_grid(nx=40, ny=20):
    xs, ys = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    points = np.stack([xs.ravel() * SPACING, ys.ravel() * SPACING, np.zeros(xs.size)], axis=1)
    return points, xs.ravel()


def assert_no_superpoint_crosses_a_mask(superpoints, observations):
    for view in np.unique(observations.view_id):
        rows = observations.view_id == view
        for sp in np.unique(superpoints[observations.point_index[rows]]):
            masks = observations.mask_id[rows][superpoints[observations.point_index[rows]] == sp]
            assert len(np.unique(masks)) == 1, f"superpoint {sp} crosses masks {np.unique(masks)} in view {view}"


def test_plane_without_masks_is_one_superpoint():
    points, _ = flat_grid()
    normals = np.tile([0.0, 0.0, 1.0], (len(points), 1))
    none = MaskObservations.from_arrays([], [], [], len(points))
    superpoints = compute_superpoints(points, none, SPACING, normals=normals, threshold=1.0)
    assert np.all(superpoints == 0)


def test_superpoint_never_bridges_a_mask_boundary_through_unseen_points():
    # View 0 sees the left third as mask 1 and the right third as mask 2; the middle strip it never saw, so every
    # single edge is compatible, but a region holding both ends would cross view 0's boundary.
    points, x = flat_grid()
    seen = np.flatnonzero((x < 13) | (x >= 27))
    view0 = MaskObservations.from_arrays(seen, np.zeros_like(seen), np.where(x[seen] < 13, 1, 2), len(points))
    normals = np.tile([0.0, 0.0, 1.0], (len(points), 1))
    superpoints = compute_superpoints(points, view0, SPACING, normals=normals, threshold=1.0)
    assert_no_superpoint_crosses_a_mask(superpoints, view0)
    assert superpoints[0] != superpoints[-1]
    assert len(np.unique(superpoints)) == 2  # the strip joins one side; nothing else splits a flat uniform plane


def test_masks_of_two_views_cut_a_uniform_cloud_along_both_boundaries():
    points, x = flat_grid()
    y = np.rint(points[:, 1] / SPACING).astype(int)
    everything = np.arange(len(points))
    observations = MaskObservations.from_arrays(
        np.concatenate([everything, everything]),
        np.concatenate([np.zeros(len(points), int), np.ones(len(points), int)]),
        np.concatenate([(x >= 20).astype(int), 5 + (y >= 10).astype(int)]),
        len(points),
    )
    superpoints = compute_superpoints(points, observations, SPACING, threshold=1.0)
    assert_no_superpoint_crosses_a_mask(superpoints, observations)
    assert len(np.unique(superpoints)) == 4


def test_geometry_and_colour_split_regions_without_masks():
    # Floor (z = 0) and a wall (x = -0.02, in the next voxel column) meeting at a crease; a red patch on the floor.
    g = np.arange(20) * SPACING
    a, b = np.meshgrid(g, g, indexing="ij")
    floor = np.stack([a.ravel() + SPACING, b.ravel(), np.zeros(a.size)], axis=1)
    wall = np.stack([np.full(a.size, -0.02), b.ravel(), a.ravel() + SPACING], axis=1)
    points = np.concatenate([floor, wall])
    normals = np.concatenate([np.tile([0, 0, 1.0], (len(floor), 1)), np.tile([1.0, 0, 0], (len(wall), 1))])
    colours = np.full((len(points), 3), 128.0)
    red = (points[:, 2] == 0) & (points[:, 0] > 0.6)
    colours[red] = [255.0, 0.0, 0.0]
    none = MaskObservations.from_arrays([], [], [], len(points))
    superpoints = compute_superpoints(points, none, SPACING * 1.01, normals=normals, colours=colours, threshold=0.1)
    assert len(np.unique(superpoints[: len(floor)][~red[: len(floor)]])) == 1
    assert len(np.unique(superpoints[red])) == 1
    assert superpoints[red][0] != superpoints[0]
    assert not set(superpoints[len(floor):]) & set(superpoints[: len(floor)])


def test_min_size_absorbs_small_superpoints_but_not_across_masks():
    points, x = flat_grid(10, 10)
    rng = np.random.default_rng(0)
    colours = np.full((len(points), 3), 100.0)
    speckle = rng.choice(len(points), 5, replace=False)
    colours[speckle] = 250.0
    left = np.flatnonzero(x < 5)
    observations = MaskObservations.from_arrays(left, np.zeros_like(left), np.zeros_like(left), len(points))
    superpoints = compute_superpoints(points, observations, SPACING, colours=colours, threshold=0.01, min_size=8)
    assert_no_superpoint_crosses_a_mask(superpoints, observations)
    sizes = np.bincount(superpoints)
    assert sizes.min() >= 8


def test_estimated_normals_are_unit_and_perpendicular_to_a_plane():
    points, _ = flat_grid(10, 10)
    normals = estimate_normals(points, radius=0.12)
    assert np.allclose(np.abs(normals[:, 2]), 1.0, atol=1e-6)


def test_refinement_gives_each_superpoint_to_its_majority_instance():
    superpoints = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])
    instances = np.array([4, 4, 7, -1, 9, -1, -1, 3, 5, -1])
    refined = refine_with_superpoints(superpoints, instances)
    assert refined.tolist() == [4, 4, 4, 4, 9, 9, 9, 3, 3, -1]


def test_bad_observations_are_rejected():
    with pytest.raises(ValueError, match="occurs twice"):
        MaskObservations.from_arrays([0, 0], [1, 1], [2, 3], 5)
    with pytest.raises(ValueError, match=r"point_index must lie in \[0, 5\)"):
        MaskObservations.from_arrays([7], [0], [0], 5)
    with pytest.raises(ValueError, match="differ in length"):
        MaskObservations.from_arrays([0, 1], [0], [0], 5)
    points = np.zeros((3, 3))
    with pytest.raises(ValueError, match="MaskObservations"):
        compute_superpoints(points, ([0], [0], [0]), 0.1)
    with pytest.raises(ValueError, match="finite"):
        compute_superpoints(np.full((3, 3), np.nan), MaskObservations.from_arrays([], [], [], 3), 0.1)
    with pytest.raises(ValueError, match="differ"):
        refine_with_superpoints(np.zeros(3, int), np.zeros(4, int))
