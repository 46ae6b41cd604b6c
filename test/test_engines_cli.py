"""``ov-mapping export-engines``: ONNX files, manifest and summary table; TensorRT skipped with its reason."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("onnx", reason="onnx is not installed")

from ov_mapping.engines import cli  # noqa: E402
from ov_mapping.engines.export import MANIFEST_NAME  # noqa: E402


def test_export_engines_writes_every_graph_and_a_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "tensorrt_status", lambda: "the tensorrt Python package is not installed")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--config", "small", "--out", str(tmp_path), "--graphs", "encoder", "retrieval"])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert files == ["encoder.fp32.onnx", MANIFEST_NAME, "retrieval.fp32.onnx"]
    assert "RANDOMLY INITIALISED" in out
    assert "TensorRT engines not built: the tensorrt Python package is not installed" in out
    assert "encoder.fp32.onnx" in out and "total" in out.splitlines()[-1]


def test_table_reports_sizes_in_mib():
    table = cli.format_table([("encoder", "a.onnx", 3 * 2**20), ("i2p", "b.onnx", 2**20)])
    assert "3.0 MiB" in table and table.splitlines()[-1].strip().endswith("4.0 MiB")
