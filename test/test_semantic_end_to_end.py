"""The honest semantic check, end to end: the whole graph on the synthetic room with the project's tiny CLIP (trained
on renders of other rooms only; see test/assets/tiny_clip), scored against the room's ground truth.

Floors are set well below what this machine measured (mIoU 0.39, mAcc 0.52, class queries 0.6, colour queries 1.0 on
40 frames), so they catch a broken stage without failing on small numeric drift; the shuffled-label control must stay
far below (measured 0.003).
"""

import json
from pathlib import Path

from ov_mapping.tools.demo import SemanticCheck, run_demo

ASSETS = Path(__file__).resolve().parent / "assets" / "tiny_clip"


def test_semantic_map_of_the_synthetic_room_beats_its_floors(tmp_path):
    check = SemanticCheck(str(ASSETS / "tiny_clip.safetensors"), str(ASSETS / "tiny_clip_config.json"))
    assert run_demo("synthetic", tmp_path, rate=2.0, frames=40, timeout=240, semantic=check) == 0
    result = json.loads((tmp_path / "semantic.json").read_text())
    segmentation, queries = result["segmentation"], result["queries"]
    assert segmentation["mIoU"] >= 0.25 and segmentation["mAcc"] >= 0.35
    assert result["shuffled_control"]["mIoU"] < 0.1 < segmentation["mIoU"] - 0.15
    assert queries["top1_colour"] >= 0.7
    assert queries["top1_class"] >= 0.3
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["keyframes_integrated"] == report["keyframes"] and report["instances"] > 5
