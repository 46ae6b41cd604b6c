"""reconstruction_node in RGB mode, as a real process fed by the player over DDS: CLIP3R (small config, random weights,
so the geometry is meaningless) must still publish a finite pointmap and pose for every keyframe, flagged non-metric."""

import numpy as np
from conftest import play_into_reconstruction


def test_rgb_mode_publishes_finite_keyframes_and_poses():
    from ov_mapping.ros import conversions as conv

    # 16 frames at stride 2 make 8 keyframes; all but those still waiting for a later window come out.
    received = play_into_reconstruction({
        "mode": "rgb", "clip3r_config": "small", "clip3r_i2p_weights": "", "clip3r_l2w_weights": "",
        "clip3r_allow_random_weights": True, "clip3r_keyframe_stride": 2, "clip3r_register_group": 1,
        "clip3r_i2p_min_confidence": 0.0, "clip3r_l2w_min_confidence": 0.0, "input_reliability": "reliable",
        "queue_size": 100}, frames=16, want_keyframes=8)
    assert len(received) >= 6, f"only {len(received)} keyframes"
    ids = [msg.keyframe_id for msg in received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for msg in received:
        keyframe = conv.msg_to_keyframe(msg)
        assert not msg.metric_scale
        assert np.isfinite(keyframe.pose).all()
        assert keyframe.pointmap.shape == (224, 224, 3)
        assert np.isfinite(keyframe.pointmap).all(axis=2).mean() > 0.5
