"""Full-size I2P / L2W (built on the meta device) match the published SLAM3R checkpoint keys exactly."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from ov_mapping.models.clip3r import CLIP3R_PREFIXES, build_i2p, build_l2w

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def _read_key_list(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, _dtype = line.split("\t")
        rows.append((name, tuple(ast.literal_eval(shape))))
    return rows


def _slam3r_keys(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.startswith(CLIP3R_PREFIXES)]


CASES = [(build_i2p, "slam3r_i2p_state_dict.txt", 532_934_913), (build_l2w, "slam3r_l2w_state_dict.txt", 230_624_000)]


@pytest.mark.parametrize("builder,filename,num_params", CASES)
@pytest.mark.parametrize("clip_dim", [None, 1152])
def test_full_size_keys_and_shapes_match_checkpoint(builder, filename, num_params, clip_dim):
    path = REFERENCE / filename
    if not path.is_file():
        pytest.skip(f"{path} absent")
    with torch.device("meta"):
        model = builder(clip_dim=clip_dim)
    assert all(p.is_meta for p in model.parameters())
    expected = _read_key_list(path)
    got = _slam3r_keys(model)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    assert got == expected  # same order too
    assert sum(math.prod(shape) for _, shape in got) == num_params


@pytest.mark.parametrize("builder,prefix", [(build_i2p, "clip_injection."), (build_l2w, "clip_head.")])
def test_clip3r_parameters_use_new_prefixes_only(builder, prefix):
    with torch.device("meta"):
        plain = set(builder().state_dict())
        clip = set(builder(clip_dim=1152).state_dict())
    added = clip - plain
    assert plain <= clip
    assert added and all(k.startswith(prefix) for k in added)
