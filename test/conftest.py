"""Test-wide settings: each test process talks DDS on its own random domain, on this host only."""

import os
import random
from pathlib import Path

import pytest

# Set before any rclpy import so every node started by these tests (in-process or child) shares them.
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 101))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                      str(Path(__file__).resolve().parents[1] / "config" / "fastdds_large_messages.xml"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (real camera sequences are shared beside the repository)")
    return SHARED_DATA


# A tiny CLIP of the real open_clip architecture with random weights: enough to exercise every CLIP code path.
TINY_CLIP_CFG = {"embed_dim": 32,
                 "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory) -> tuple[str, str]:
    """(checkpoint, config JSON) of a random tiny CLIP, written once per test session."""
    import json

    import torch

    from ov_mapping.models.clip import build_clip_from_config

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    torch.save(build_clip_from_config(TINY_CLIP_CFG).state_dict(), folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps(TINY_CLIP_CFG))
    return str(folder / "tiny.pt"), str(folder / "tiny.json")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny networks run fastest on one thread, and far faster than on two when other work shares the CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def play_into_reconstruction(recon_params: dict, frames: int, want_keyframes: int) -> list:
    """Start reconstruction_node with ``recon_params``, play ``frames`` synthetic frames into it (player process,
    DDS), and return the Keyframe messages it published (waiting for ``want_keyframes`` of them, 60 s at most)."""
    from ov_mapping.msg import Keyframe as KeyframeMsg
    from ov_mapping.ros import graph
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.ros.qos import PIPELINE_QOS
    from ov_mapping.tools.launcher import Launcher

    received = []
    client = GraphClient("test_reconstruction")
    client.subscribe(KeyframeMsg, graph.TOPIC_KEYFRAMES, PIPELINE_QOS, received.append)
    recon = Launcher([graph.RECONSTRUCTION], extra_params={graph.RECONSTRUCTION.name: recon_params})
    player = Launcher([graph.PLAYER], extra_params={graph.PLAYER.name: {
        "input": "synthetic", "synthetic_frames": frames, "rate": 2.0}})
    recon.start()
    try:
        assert client.spin_until(lambda: client.node.count_subscribers(graph.CAMERA_TOPICS["image"]) > 0, 60)
        player.start()
        assert client.spin_until(lambda: client.player_done, 60)
        client.spin_until(lambda: len(received) >= want_keyframes, 60)
    finally:
        player.stop()
        recon.stop()
        client.close()
    return received
