"""Connected components of binary masks and small-region cleanup, in numpy (no OpenCV / SciPy needed).

Components are found on horizontal runs: each row's runs of True pixels are joined with the overlapping runs of
the previous row (4-connectivity) by union-find, so the Python work scales with the number of runs, not pixels.
"""

from __future__ import annotations

import numpy as np


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, starts and (exclusive) ends of all horizontal runs of True in ``mask`` (H, W)."""
    H, W = mask.shape
    padded = np.zeros((H, W + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    start_rows, starts = np.nonzero(change == 1)
    _, ends = np.nonzero(change == -1)
    return start_rows, starts, ends


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a binary image.

    Args:
        mask: (H, W) bool.
    Returns:
        labels: (H, W) int32, 0 for background and 1..n for components (in raster order of first pixel);
        n: the number of components.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be (H, W) bool, got {mask.shape} {mask.dtype}")
    labels = np.zeros(mask.shape, dtype=np.int32)
    rows, starts, ends = _row_runs(mask)
    n_runs = len(rows)
    if n_runs == 0:
        return labels, 0
    parent = list(range(n_runs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(mask.shape[0] + 1))
    rows_l, starts_l, ends_l, first_l = rows.tolist(), starts.tolist(), ends.tolist(), row_first.tolist()
    for r in range(1, mask.shape[0]):
        a, a_end = first_l[r - 1], first_l[r]  # runs of the previous row
        b, b_end = first_l[r], first_l[r + 1]  # runs of this row
        while a < a_end and b < b_end:  # both lists are sorted by start: a two-pointer sweep
            if starts_l[a] < ends_l[b] and starts_l[b] < ends_l[a]:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            if ends_l[a] <= ends_l[b]:
                a += 1
            else:
                b += 1
    roots = np.array([find(i) for i in range(n_runs)])
    _, compact = np.unique(roots, return_inverse=True)
    for row, start, end, label in zip(rows_l, starts_l, ends_l, (compact + 1).tolist()):
        labels[row, start:end] = label
    return labels, int(compact.max()) + 1


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes and drop islands smaller than ``min_area`` pixels (what SAM's postprocessing does).

    Args:
        mask: (H, W) bool.
    Returns:
        (H, W) bool, a new array.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be (H, W) bool, got {mask.shape} {mask.dtype}")
    if min_area <= 0:
        return mask.copy()
    out = mask.copy()
    holes, n_holes = label_components(~mask)
    if n_holes:
        small = np.flatnonzero(np.bincount(holes.ravel(), minlength=n_holes + 1)[1:] < min_area) + 1
        out |= np.isin(holes, small)
    islands, n_islands = label_components(out)
    if n_islands:
        small = np.flatnonzero(np.bincount(islands.ravel(), minlength=n_islands + 1)[1:] < min_area) + 1
        out &= ~np.isin(islands, small)
    return out
