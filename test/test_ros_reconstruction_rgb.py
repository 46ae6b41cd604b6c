"""reconstruction_node in RGB mode, as a real process fed by the player over DDS: CLIP3R (small config, random weights,
so the geometry is meaningless) must still publish a finite pointmap and pose for every keyframe, flagged non-metric."""

import numpy as np

from ov_mapping.ros import graph
from ov_mapping.tools.launcher import Launcher


def test_rgb_mode_publishes_finite_keyframes_and_poses(tmp_path):
    from ov_mapping.msg import Keyframe as KeyframeMsg
    from ov_mapping.ros import conversions as conv
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.ros.qos import PIPELINE_QOS

    received = []
    client = GraphClient("test_rgb")
    client.subscribe(KeyframeMsg, graph.TOPIC_KEYFRAMES, PIPELINE_QOS, received.append)
    recon = Launcher([graph.RECONSTRUCTION], extra_params={graph.RECONSTRUCTION.name: {
        "mode": "rgb", "clip3r_config": "small", "clip3r_i2p_weights": "", "clip3r_l2w_weights": "",
        "clip3r_allow_random_weights": True, "clip3r_keyframe_stride": 2, "clip3r_register_group": 1,
        "clip3r_i2p_min_confidence": 0.0, "clip3r_l2w_min_confidence": 0.0, "input_reliability": "reliable",
        "queue_size": 100}})
    player = Launcher([graph.PLAYER], extra_params={graph.PLAYER.name: {
        "input": "synthetic", "synthetic_frames": 16, "rate": 2.0}})
    recon.start()
    try:
        assert client.spin_until(lambda: client.node.count_subscribers(graph.CAMERA_TOPICS["image"]) > 0, 60)
        player.start()
        assert client.spin_until(lambda: client.player_done, 60)
        # 16 frames at stride 2 make 8 keyframes; all but those still waiting for a later window are out.
        client.spin_until(lambda: len(received) >= 8, 60)
    finally:
        player.stop()
        recon.stop()
        client.close()
    assert len(received) >= 6, f"only {len(received)} keyframes"
    ids = [msg.keyframe_id for msg in received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for msg in received:
        keyframe = conv.msg_to_keyframe(msg)
        assert not msg.metric_scale
        assert np.isfinite(keyframe.pose).all()
        assert keyframe.pointmap.shape == (224, 224, 3)
        assert np.isfinite(keyframe.pointmap).all(axis=2).mean() > 0.5
