"""Open what a user names as input: ``synthetic`` or a path to a recorded sequence."""

from __future__ import annotations

from ov_mapping.datasets.base import Sequence
from ov_mapping.datasets.folder import open_sequence

SYNTHETIC = "synthetic"


def open_input(source: str, synthetic_frames: int = 60, synthetic_seed: int = 0, **options) -> Sequence:
    """The sequence behind ``source``: the project's synthetic room for ``"synthetic"``, else a folder or rosbag2."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError("input is empty: give 'synthetic', a 7-Scenes or TUM folder, or a rosbag2")
    if source == SYNTHETIC:
        from ov_mapping.datasets.synthetic import SyntheticSequence  # open3d only when needed

        return SyntheticSequence(num_frames=synthetic_frames, seed=synthetic_seed)
    return open_sequence(source, **options)
