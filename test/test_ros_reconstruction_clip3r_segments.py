"""reconstruction_node in RGB mode on CLIP3R weights with the CLIP injection, as a real process fed by the player over
DDS: it computes each frame's object-level CLIP map itself (tiny random CLIP, graph masks) and publishes keyframes
carrying those masks and embeddings as upstream segments; without CLIP weights it refuses to start."""

import subprocess

import numpy as np
import pytest
import torch
from conftest import play_into_reconstruction

from ov_mapping.ros import graph
from ov_mapping.tools.launcher import node_command, node_environment

CLIP3R_PARAMS = {"mode": "rgb", "clip3r_config": "small", "clip3r_keyframe_stride": 2, "clip3r_register_group": 1,
                 "clip3r_i2p_min_confidence": 0.0, "clip3r_l2w_min_confidence": 0.0, "clip3r_mask_source": "graph",
                 "input_reliability": "reliable", "queue_size": 100}


@pytest.fixture(scope="module")
def clip3r_files(tmp_path_factory, tiny_clip_files):
    """(I2P with a CLIP injection of the tiny CLIP's dimension, L2W) random small checkpoints as safetensors."""
    from safetensors.torch import save_file

    from ov_mapping.models.clip import load_clip
    from ov_mapping.models.clip3r import build_i2p, build_l2w

    dim = load_clip("tiny", *tiny_clip_files).embed_dim
    folder = tmp_path_factory.mktemp("clip3r")
    torch.manual_seed(0)
    for name, net in (("i2p", build_i2p("small", clip_dim=dim)), ("l2w", build_l2w("small"))):
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / f"{name}.safetensors")
    return str(folder / "i2p.safetensors"), str(folder / "l2w.safetensors")


def test_clip3r_keyframes_carry_upstream_segments(clip3r_files, tiny_clip_files):
    from ov_mapping.ros import conversions as conv

    received = play_into_reconstruction({
        **CLIP3R_PARAMS, "clip3r_i2p_weights": clip3r_files[0], "clip3r_l2w_weights": clip3r_files[1],
        "clip3r_clip_model": "tiny", "clip3r_clip_weights": tiny_clip_files[0],
        "clip3r_clip_config": tiny_clip_files[1]}, frames=12, want_keyframes=4)
    assert len(received) >= 3, f"only {len(received)} keyframes"
    dim = None
    for msg in received:
        keyframe = conv.msg_to_keyframe(msg)
        segments = conv.msgs_to_segments(msg.segments)
        assert segments, f"keyframe {msg.keyframe_id} has no upstream segments"
        for segment in segments:
            assert segment.mask.shape == keyframe.pointmap.shape[:2] == (224, 224)
            assert segment.clip_embedding is not None and np.isfinite(segment.clip_embedding).all()
            dim = dim or segment.clip_embedding.shape
            assert segment.clip_embedding.shape == dim
    assert dim[0] > 1


def test_clip3r_weights_without_clip_weights_refuse_to_start(clip3r_files, tmp_path):
    command = node_command(graph.RECONSTRUCTION, graph.default_params_file(), {
        **CLIP3R_PARAMS, "clip3r_i2p_weights": clip3r_files[0], "clip3r_l2w_weights": clip3r_files[1],
        "clip3r_clip_model": "tiny", "clip3r_clip_weights": str(tmp_path / "missing.pt"),
        "clip3r_clip_config": str(tmp_path / "missing.json")})
    result = subprocess.run(command, env=node_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "clip3r_clip_weights" in result.stdout + result.stderr
