"""CLIP3R reproduces the SLAM3R reference test vectors (small config, shipped weights loaded strictly)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ov_mapping.models.clip3r import build_i2p, build_l2w, load_checkpoint

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "slam3r_vectors"
pytestmark = pytest.mark.skipif(not (VECTORS / "vectors.json").is_file(), reason="shared SLAM3R vectors absent")


def _protocol() -> dict:
    return json.loads((VECTORS / "vectors.json").read_text()) if (VECTORS / "vectors.json").is_file() else {"outputs": {}}


def _on_grid(t: torch.Tensor, step: int) -> np.ndarray:
    """Maps (B, 224, 224[, 3]) are stored on the ``step``-pixel grid; other tensors as they are."""
    a = t.detach().numpy()
    return a[:, ::step, ::step] if a.ndim >= 3 and a.shape[1] == 224 else a


@pytest.fixture(scope="module")
def computed() -> dict[str, np.ndarray]:
    proto = _protocol()
    assert proto["config"]["enc_embed_dim"] == 128 and proto["config"]["dec_depth"] == 2
    step = proto["output_grid_step"]
    inputs = np.load(VECTORS / "inputs.npz")
    images = torch.from_numpy(inputs["images"])
    pointmaps = torch.from_numpy(inputs["pointmaps"])
    i2p = build_i2p("small")
    l2w = build_l2w("small")
    load_checkpoint(i2p, VECTORS / "i2p_small.safetensors")
    load_checkpoint(l2w, VECTORS / "l2w_small.safetensors")
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        tokens = [i2p.encode(images[i : i + 1]) for i in range(proto["nviews"])]
        out["enc_tokens_raw_v0"] = _on_grid(tokens[0], step)
        for view, res in enumerate(i2p(tokens, proto["i2p_ref_id"], return_pseudo_conf=True)):
            for key, value in res.items():
                out[f"i2p/view{view}/{key}"] = _on_grid(value, step)
        scores = i2p.retrieval_scores(tokens, proto["corr_score_ref_id"], depth=proto["corr_depth"])
        out["corr_score"] = scores.numpy()
        scene, keys = proto["l2w_scene_views"], proto["l2w_key_views"]
        scene_res, key_res = l2w(
            [tokens[i] for i in scene],
            [pointmaps[i : i + 1] for i in scene],
            [tokens[i] for i in keys],
            [pointmaps[i : i + 1] for i in keys],
        )
        for view, res in zip(scene + keys, scene_res + key_res):
            for key, value in res.items():
                out[f"l2w/view{view}/{key}"] = _on_grid(value, step)
    return out


def test_every_reference_output_is_produced(computed):
    expected = set(_protocol()["outputs"])
    assert set(computed) == expected


@pytest.mark.parametrize("name", sorted(_protocol()["outputs"]))
def test_output_matches_reference(computed, name):
    reference = np.load(VECTORS / "outputs.npz")[name]
    got = computed[name]
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-3)


def test_retrieval_logits_are_log_of_score_minus_one():
    i2p = build_i2p("small")
    load_checkpoint(i2p, VECTORS / "i2p_small.safetensors")
    tokens = [torch.randn(1, 196, 128) for _ in range(3)]
    with torch.no_grad():
        logits = i2p.retrieval_logits(tokens, 1)
        scores = i2p.retrieval_scores(tokens, 1)
    assert logits.shape == (2, 1, 196)
    torch.testing.assert_close(scores, 1.0 + logits.exp())
