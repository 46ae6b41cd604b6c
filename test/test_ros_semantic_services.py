"""The map server's text services over DDS: query, vocabulary, embedding, and refusals that change nothing.

A tiny CLIP of the real open_clip architecture (random weights) is the text encoder: enough to test the plumbing
exactly, because the segments' CLIP embeddings are made with the same model's text encoder.
"""

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics, Keyframe, Segment, SegmentedKeyframe
from ov_mapping.models.clip import ClipModel
from ov_mapping.ros import graph
from ov_mapping.tools.launcher import Launcher

@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_files):
    weights, config = tiny_clip_files
    return ClipModel.from_checkpoint(weights, config=config), weights, config


def _box_segment(segment_id, centre, embedding, label=""):
    rng = np.random.default_rng(segment_id)
    points = (np.asarray(centre) + rng.uniform(-0.2, 0.2, (400, 3))).astype(np.float32)
    mask = np.zeros((8, 8), bool)
    mask[segment_id % 2 * 4:(segment_id % 2) * 4 + 4] = True
    return Segment(segment_id, mask, points, embedding.astype(np.float32), clip_embedding=embedding.astype(np.float32),
                   label=label, label_score=1.0 if label else 0.0)


def test_text_services_answer_and_refuse_bad_requests(tiny_clip, tmp_path):
    from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
    from ov_mapping.ros import conversions as conv
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.ros.qos import PIPELINE_QOS
    from ov_mapping.srv import EmbedText, QueryText, SetVocabulary

    model, weights, config = tiny_clip
    chair, mug = model.encode_text(["red chair", "blue mug"])
    launcher = Launcher([graph.MAP_SERVER], extra_params={graph.MAP_SERVER.name: {
        "map_dir": str(tmp_path), "publish_rate": 5.0, "clip_weights": weights, "clip_config": config}})
    launcher.start()
    client = GraphClient("test_semantic")
    try:
        publisher = client.node.create_publisher(SegmentedKeyframeMsg, graph.TOPIC_SEGMENTED, PIPELINE_QOS)
        assert client.spin_until(lambda: publisher.get_subscription_count() > 0, 60)
        for view in range(2):  # queries answer with instances seen in at least two views
            keyframe = Keyframe(view, 1.0 + view, np.zeros((8, 8, 3), np.uint8), CameraIntrinsics(8, 8, 4, 4, 8, 8),
                                np.eye(4), np.full((8, 8, 3), np.nan, np.float32), np.ones((8, 8), np.float32))
            segmented = SegmentedKeyframe(keyframe, [_box_segment(0, [2, 0, 0.4], chair),
                                                     _box_segment(1, [0, 2, 0.8], mug)], "test")
            publisher.publish(conv.segmented_keyframe_to_msg(segmented))
        assert client.spin_until(lambda: client.value("map_server_node", "keyframes") >= 2, 30)
        assert client.value("map_server_node", "instances") == 2

        embedded = client.call(EmbedText, graph.SERVICE_EMBED, EmbedText.Request(text="red chair"))
        assert embedded.success and np.allclose(embedded.embedding, chair, atol=1e-5)

        answer = client.call(QueryText, graph.SERVICE_QUERY, QueryText.Request(text="red chair", top_k=2))
        assert answer.success, answer.message
        assert len(answer.instances) == 2 and answer.scores[0] >= answer.scores[1]
        best = answer.instances[0]
        assert abs(best.centroid.x - 2.0) < 0.1 and abs(best.centroid.y) < 0.1
        goal = answer.goals[0].pose.position
        assert answer.goals[0].header.frame_id == "map"
        # The goal stands off the object's box, not at its centroid.
        assert np.hypot(goal.x - best.centroid.x, goal.y - best.centroid.y) > 0.3
        assert answer.points.width > 0

        labelled = client.call(SetVocabulary, graph.SERVICE_VOCABULARY,
                               SetVocabulary.Request(labels=["red chair", "blue mug"]))
        assert labelled.success and labelled.num_instances_labelled == 2
        version = client.value("map_server_node", "points")
        for bad in (QueryText.Request(text=""), QueryText.Request(text="x" * 10_000),
                    QueryText.Request(text="chair", min_score=2.0)):
            refused = client.call(QueryText, graph.SERVICE_QUERY, bad)
            assert not refused.success and refused.message
        for bad_labels in (["chair", "chair"], ["chair", ""], [f"label {i}" for i in range(5001)]):
            refused = client.call(SetVocabulary, graph.SERVICE_VOCABULARY, SetVocabulary.Request(labels=bad_labels))
            assert not refused.success and "unchanged" in refused.message
        # Diagnostics come once a second; the failed calls must have left the vocabulary and map as they were.
        assert client.spin_until(lambda: client.value("map_server_node", "vocabulary_size") == 2, 5)
        assert client.value("map_server_node", "points") == version
        cleared = client.call(SetVocabulary, graph.SERVICE_VOCABULARY, SetVocabulary.Request(labels=[]))
        assert cleared.success  # an empty vocabulary is a defined result: no labels
    finally:
        client.close()
        launcher.stop()
