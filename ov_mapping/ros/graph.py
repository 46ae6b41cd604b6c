"""The node graph, defined once: ``launch/robot.launch.py`` and ``ov-mapping launch`` both build from it.

Plain data (no rclpy import), so the launcher, the launch file and the tests read the same definition.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PACKAGE = "ov_mapping"
NAMESPACE = "ov_mapping"

# Default camera topics (a RealSense-style driver); remap them here, in one place.
CAMERA_TOPICS = {
    "image": "/camera/color/image_raw",
    "image/compressed": "/camera/color/image_raw/compressed",
    "depth": "/camera/depth/image_raw",
    "camera_info": "/camera/color/camera_info",
}


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: the executable under lib/ov_mapping, its Python module and its remappings."""

    executable: str
    module: str
    remappings: tuple = field(default_factory=tuple)  # ((from, to), ...)

    @property
    def name(self) -> str:
        return self.executable


RECONSTRUCTION = NodeSpec("reconstruction_node", "ov_mapping.nodes.reconstruction_node",
                          tuple(CAMERA_TOPICS.items()))
SEGMENTATION = NodeSpec("segmentation_node", "ov_mapping.nodes.segmentation_node")
MAP_SERVER = NodeSpec("map_server_node", "ov_mapping.nodes.map_server_node")
# Plays a recorded or synthetic sequence as camera topics, for people with no camera attached.
PLAYER = NodeSpec("sequence_player_node", "ov_mapping.nodes.sequence_player_node", tuple(CAMERA_TOPICS.items()))

PIPELINE = (RECONSTRUCTION, SEGMENTATION, MAP_SERVER)

# Topic and service names as seen from outside (nodes use relative names inside NAMESPACE).
TOPIC_KEYFRAMES = f"/{NAMESPACE}/keyframes"
TOPIC_SEGMENTED = f"/{NAMESPACE}/segmented_keyframes"
TOPIC_MAP_CLOUD = f"/{NAMESPACE}/map_cloud"
TOPIC_INSTANCES = f"/{NAMESPACE}/instances"
TOPIC_MARKERS = f"/{NAMESPACE}/markers"
TOPIC_CAMERA_POSE = f"/{NAMESPACE}/camera_pose"
TOPIC_PLAYER_DONE = f"/{NAMESPACE}/player_done"
SERVICE_SAVE = f"/{NAMESPACE}/save_map"
SERVICE_LOAD = f"/{NAMESPACE}/load_map"
SERVICE_QUERY = f"/{NAMESPACE}/query"
SERVICE_VOCABULARY = f"/{NAMESPACE}/set_vocabulary"
SERVICE_EMBED = f"/{NAMESPACE}/embed_text"


def _first_existing(*candidates: Path) -> Optional[Path]:
    return next((c for c in candidates if c.exists()), None)


def share_dir() -> Path:
    """``share/ov_mapping`` of the install, or the source checkout when run from one."""
    source = Path(__file__).resolve().parents[2]
    if (source / "config").is_dir() and (source / "package.xml").exists():
        return source
    prefix = Path(os.environ.get("VIRTUAL_ENV", "") or Path(__file__).resolve().parents[5])
    found = _first_existing(prefix / "share" / PACKAGE)
    if found is None:
        raise FileNotFoundError(f"cannot find share/{PACKAGE} (looked in {source} and {prefix})")
    return found


def default_params_file() -> Path:
    return share_dir() / "config" / "ov_mapping.yaml"


def fastdds_profile_file() -> Path:
    return share_dir() / "config" / "fastdds_large_messages.xml"


def ros_arguments(spec: NodeSpec, params_file: Path, extra_params: Optional[dict] = None) -> list[str]:
    """The ``--ros-args`` a process of ``spec`` gets: name, namespace, parameter file, overrides, remappings."""
    args = ["--ros-args", "-r", f"__node:={spec.name}", "-r", f"__ns:=/{NAMESPACE}", "--params-file", str(params_file)]
    for key, value in (extra_params or {}).items():
        # rcl reads the value as YAML: JSON quoting keeps "" and strings such as "true" or "1" strings.
        args += ["-p", f"{key}:={json.dumps(value)}"]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    return args
