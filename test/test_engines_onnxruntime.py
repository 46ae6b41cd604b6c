"""ONNX Runtime runner vs the PyTorch networks: shipped small SLAM3R weights and random CLIP3R weights, 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from ov_mapping.engines import make_runner  # noqa: E402
from ov_mapping.models.clip3r import build_i2p, build_l2w, load_i2p, load_l2w  # noqa: E402

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "slam3r_vectors"
ATOL = 1e-4


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    if not (VECTORS / "i2p_small.safetensors").is_file():
        pytest.skip(f"shared SLAM3R test vectors absent ({VECTORS})")
    i2p = load_i2p(VECTORS / "i2p_small.safetensors", "small")
    l2w = load_l2w(VECTORS / "l2w_small.safetensors", "small")
    runner = make_runner("onnxruntime", i2p=i2p, l2w=l2w, artifacts_dir=tmp_path_factory.mktemp("art"))
    inputs = np.load(VECTORS / "inputs.npz")
    return i2p, l2w, runner, inputs["images"], inputs["pointmaps"]


def _assert_close(got: np.ndarray, want: torch.Tensor) -> None:
    want = want.detach().numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-4)


def test_encoder_matches_torch_with_batch_of_three(shipped):
    i2p, _, runner, images, _ = shipped
    tokens = runner.encode(images[:3])
    assert len(tokens) == 3 and tokens[0].shape == (1, 196, 128)
    with torch.no_grad():
        want = i2p.encode(torch.from_numpy(images[:3]))
    for b in range(3):
        _assert_close(tokens[b].numpy(), want[b : b + 1])


@pytest.mark.parametrize("views,ref", [(5, 2), (3, 0), (2, 1)])
def test_i2p_matches_torch_for_any_window_and_reference(shipped, views, ref):
    i2p, _, runner, images, _ = shipped
    tokens = runner.encode(images[:views])
    got = runner.i2p(tokens, ref)
    with torch.no_grad():
        want = i2p(tokens, ref)
    assert len(got) == views
    for v in range(views):
        _assert_close(got[v].pts3d, want[v]["pts3d" if v == ref else "pts3d_in_other_view"][0])
        _assert_close(got[v].conf, want[v]["conf"][0])


def test_i2p_reproduces_reference_vectors(shipped):
    _, _, runner, images, _ = shipped
    reference = np.load(VECTORS / "outputs.npz")
    got = runner.i2p(runner.encode(images), 2)
    for v in range(5):
        key = "pts3d" if v == 2 else "pts3d_in_other_view"
        np.testing.assert_allclose(got[v].pts3d[::8, ::8][None], reference[f"i2p/view{v}/{key}"], atol=ATOL, rtol=1e-3)
        np.testing.assert_allclose(got[v].conf[::8, ::8][None], reference[f"i2p/view{v}/conf"], atol=ATOL, rtol=1e-3)


def test_retrieval_matches_torch_per_candidate(shipped):
    i2p, _, runner, images, _ = shipped
    tokens = runner.encode(images)
    scores = runner.retrieval(tokens[:3], tokens[3:])
    assert scores.shape == (3, 2, 196) and (scores >= 1).all()
    with torch.no_grad():
        for r in range(3):
            _assert_close(scores[r], i2p.retrieval_scores([tokens[r], *tokens[3:]], 0)[:, 0])
    reference = np.load(VECTORS / "outputs.npz")["corr_score"]  # ref view 0 against views 1-4
    np.testing.assert_allclose(runner.retrieval(tokens[:1], tokens[1:])[0], reference[:, 0], atol=ATOL, rtol=1e-3)


def test_l2w_matches_torch_with_and_without_masks(shipped):
    _, l2w, runner, images, pointmaps = shipped
    tokens = runner.encode(images)
    key_masks = np.zeros((2, 196), dtype=bool)
    key_masks[1, :50] = True
    for masks in (None, key_masks):
        regs = runner.l2w(tokens[:3], pointmaps[:3], tokens[3:], pointmaps[3:], key_masks=masks)
        with torch.no_grad():
            _, want = l2w(tokens[:3], [torch.from_numpy(p[None]) for p in pointmaps[:3]], tokens[3:],
                          [torch.from_numpy(p[None]) for p in pointmaps[3:]],
                          key_masks=None if masks is None else [torch.from_numpy(m[None]) for m in masks])
        assert len(regs) == 2 and regs[0].features is None
        for reg, w in zip(regs, want):
            _assert_close(reg.pts3d, w["pts3d_in_other_view"][0])
            _assert_close(reg.conf, w["conf"][0])


def test_exports_are_reused_until_the_weights_change(shipped, tmp_path):
    i2p, l2w, _, images, _ = shipped
    make_runner("onnxruntime", i2p=i2p, with_l2w=False, artifacts_dir=tmp_path)
    encoder = tmp_path / "onnx" / "encoder.fp32.onnx"
    first = encoder.stat().st_mtime_ns
    make_runner("onnxruntime", i2p=i2p, with_l2w=False, artifacts_dir=tmp_path)
    assert encoder.stat().st_mtime_ns == first
    with torch.no_grad():
        i2p.patch_embed.proj.bias.add_(0.5)
    try:
        runner = make_runner("onnxruntime", i2p=i2p, with_l2w=False, artifacts_dir=tmp_path)
        with torch.no_grad():
            want = i2p.encode(torch.from_numpy(images[:1]))
        _assert_close(runner.encode(images[:1])[0].numpy(), want)
    finally:
        with torch.no_grad():
            i2p.patch_embed.proj.bias.sub_(0.5)


def test_random_clip3r_networks_with_clip_injection_and_head(tmp_path):
    torch.manual_seed(1)
    i2p, l2w = build_i2p("small", clip_dim=16), build_l2w("small", clip_dim=24)
    with torch.no_grad():  # the injection starts at zero effect: make it count
        i2p.clip_injection.out.weight.normal_(0, 0.05)
    runner = make_runner("onnxruntime", i2p=i2p, l2w=l2w, artifacts_dir=tmp_path)
    images = torch.rand(3, 3, 224, 224).mul(2).sub(1).numpy()
    tokens = runner.encode(images)
    clips = [torch.randn(1, 7, 16) for _ in range(3)]
    got = runner.i2p(tokens, 1, clip_features=clips)
    with torch.no_grad():
        want = i2p(tokens, 1, clip_features=clips)
        plain = i2p(tokens, 1)
    assert not torch.allclose(want[0]["conf"], plain[0]["conf"], atol=1e-3)  # the CLIP input matters
    for v in range(3):
        _assert_close(got[v].conf, want[v]["conf"][0])
    with pytest.raises(ValueError, match="clip_features are required"):
        runner.i2p(tokens, 1)
    pts = np.random.default_rng(0).normal(size=(3, 224, 224, 3)).astype(np.float32)
    regs = runner.l2w(tokens[:2], pts[:2], tokens[2:], pts[2:])
    with torch.no_grad():
        _, keys = l2w(tokens[:2], [torch.from_numpy(p[None]) for p in pts[:2]], tokens[2:],
                      [torch.from_numpy(p[None]) for p in pts[2:]])
    assert regs[0].features.shape == (14, 14, 24)
    _assert_close(regs[0].features, keys[0]["clip_features"][0])
    _assert_close(regs[0].pts3d, keys[0]["pts3d_in_other_view"][0])
