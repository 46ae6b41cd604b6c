"""The engines' runner is a drop-in Clip3rRunner for the streaming reconstruction: same calls, same results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_mapping.engines import make_runner
from ov_mapping.models.clip3r import build_i2p, build_l2w

stream = pytest.importorskip("ov_mapping.reconstruction.clip3r_stream", reason="streaming reconstruction absent")


def test_engine_runner_agrees_with_the_stream_torch_runner():
    torch.manual_seed(5)
    i2p, l2w = build_i2p("small"), build_l2w("small")
    ours = make_runner("torch", i2p=i2p, l2w=l2w, retrieval_batch=2)
    theirs = stream.TorchClip3rRunner(i2p, l2w, retrieval_batch=3)
    images = np.random.default_rng(1).uniform(-1, 1, size=(4, 3, 224, 224)).astype(np.float32)
    tokens = ours.encode(images)
    torch.testing.assert_close(tokens[2], theirs.encode(images)[2])
    for got, want in zip(ours.i2p(tokens[:3], 1), theirs.i2p(tokens[:3], 1)):
        np.testing.assert_allclose(got.pts3d, want.pts3d, atol=1e-5)
        np.testing.assert_allclose(got.conf, want.conf, atol=1e-5)
    np.testing.assert_allclose(ours.retrieval(tokens[:3], tokens[3:]), theirs.retrieval(tokens[:3], tokens[3:]),
                               rtol=1e-5)
    pts = np.random.default_rng(2).normal(size=(4, 224, 224, 3)).astype(np.float32)
    for got, want in zip(ours.l2w(tokens[:2], pts[:2], tokens[2:], pts[2:]),
                         theirs.l2w(tokens[:2], pts[:2], tokens[2:], pts[2:])):
        np.testing.assert_allclose(got.pts3d, want.pts3d, atol=1e-5)
        assert got.features is None and want.features is None
