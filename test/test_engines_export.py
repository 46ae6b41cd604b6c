"""ONNX export of the four CLIP3R graphs: checked files, names, symbolic axes, low-precision graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="onnx is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from ov_mapping.engines.export import export_all, export_graph, hash_weights, read_manifest  # noqa: E402
from ov_mapping.engines.graphs import GRAPH_NAMES, build_graph, example_inputs, graph_spec  # noqa: E402
from ov_mapping.models.clip3r import build_i2p, build_l2w  # noqa: E402


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return build_i2p("small"), build_l2w("small")


@pytest.fixture(scope="module")
def exported(nets, tmp_path_factory):
    return export_all(*nets, tmp_path_factory.mktemp("onnx"))


def _dim_params(value_info) -> list[str]:
    return [d.dim_param for d in value_info.type.tensor_type.shape.dim]


def test_every_graph_is_exported_with_its_names_and_opset(exported):
    assert set(exported) == set(GRAPH_NAMES)
    for name, g in exported.items():
        model = onnx.load(str(g.path))
        assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
        assert tuple(i.name for i in model.graph.input) == graph_spec(name).inputs
        assert tuple(o.name for o in model.graph.output) == graph_spec(name).outputs


def test_view_and_batch_axes_are_symbolic(exported):
    inputs = {g: {i.name: i for i in onnx.load(str(exported[g].path)).graph.input} for g in exported}
    assert _dim_params(inputs["encoder"]["images"])[0] == "batch"
    assert _dim_params(inputs["i2p"]["tokens"])[:2] == ["views", "batch"]
    assert _dim_params(inputs["l2w"]["key_points"])[:2] == ["key_views", "batch"]


@pytest.mark.parametrize("views", [2, 6])
def test_window_graphs_run_at_view_counts_other_than_the_traced_one(nets, exported, views):
    i2p, _ = nets
    for name in ("i2p", "retrieval"):
        module, spec = build_graph(name, i2p, None)
        example = example_inputs(spec, i2p, views=views, batch=2)
        session = ort.InferenceSession(str(exported[name].path), providers=["CPUExecutionProvider"])
        got = session.run(None, {k: v.numpy() for k, v in example.items()})
        with torch.no_grad():
            want = module(*example.values())
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-4)


def test_manifest_finds_files_and_notices_changes(nets, exported):
    out_dir = exported["encoder"].path.parent
    paths = read_manifest(out_dir, "fp32", hash_weights(*nets))
    assert set(paths) == set(GRAPH_NAMES)
    assert read_manifest(out_dir, "fp16", hash_weights(*nets)) is None
    assert read_manifest(out_dir, "fp32", "0" * 64) is None


@pytest.mark.parametrize("precision", ["fp16"])
def test_low_precision_graph_keeps_float32_io_and_stays_close(nets, tmp_path, precision):
    i2p, _ = nets
    path = export_graph("i2p", i2p, None, tmp_path / "i2p.onnx", precision=precision).path
    model = onnx.load(str(path))
    types = [t.data_type for t in model.graph.initializer]
    assert types.count(onnx.TensorProto.FLOAT16) > types.count(onnx.TensorProto.FLOAT)
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input)
    module, spec = build_graph("i2p", i2p, None)
    example = example_inputs(spec, i2p, views=3)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"tokens": example["tokens"].numpy()})
    with torch.no_grad():
        want = module(example["tokens"])
    for g, w in zip(got, want):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, w.numpy(), atol=5e-2 * float(w.abs().max()), rtol=5e-2)


def test_bad_requests_raise_clear_errors(nets, tmp_path):
    i2p, _ = nets
    with pytest.raises(ValueError, match="opset"):
        export_graph("encoder", i2p, None, tmp_path / "e.onnx", opset=13)
    with pytest.raises(ValueError, match="L2W"):
        export_graph("l2w", i2p, None, tmp_path / "l.onnx")
    with pytest.raises(ValueError, match="unknown graph"):
        graph_spec("decoder")
    with pytest.raises(ValueError, match="precision"):
        export_graph("encoder", i2p, None, tmp_path / "e.onnx", precision="int8")


def test_bfloat16_graphs_pass_strict_type_checks(nets, tmp_path):
    # ONNX Conv has no bfloat16 at opset 17: the patch embeddings must stay float32 islands.
    i2p, l2w = nets
    for name in ("encoder", "l2w"):
        path = export_graph(name, i2p, l2w, tmp_path / f"{name}.onnx", precision="bf16").path
        model = onnx.load(str(path))
        assert any(t.data_type == onnx.TensorProto.BFLOAT16 for t in model.graph.initializer)
        onnx.checker.check_model(model, full_check=True)
