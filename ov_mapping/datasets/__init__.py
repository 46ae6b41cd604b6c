"""Input sequences: recorded folders (7-Scenes, TUM), rosbag2 recordings and a synthetic labelled room.

Heavy dependencies load on use: ``rosbags`` when a bag is opened or written, ``open3d`` when a synthetic scene
is built.
"""

from ov_mapping.datasets.base import FrameGroundTruth, LabeledCloud, SceneMetadata, Sequence
from ov_mapping.datasets.folder import SevenScenesSequence, TumSequence, open_sequence

__all__ = ["FrameGroundTruth", "LabeledCloud", "SceneMetadata", "Sequence", "SevenScenesSequence", "TumSequence",
           "open_sequence"]
