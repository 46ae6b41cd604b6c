"""ONNX export of the four CLIP3R graphs (see :mod:`.graphs`), checked with ``onnx.checker``.

Uses the TorchScript exporter (``dynamo=False``): it handles SDPA + RoPE with symbolic view and batch axes and
needs no onnxscript. One ONNX op is missing there, ``aten::expm1`` (the pointmap head's depth mode), so it is
exported as ``Exp(x) - 1`` for the duration of an export; the difference is below float32 rounding at the
magnitudes that matter here (|x| of order 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ov_mapping.models.clip3r import I2P, L2W

from .graphs import GRAPH_NAMES, GraphSpec, build_graph, example_inputs
from .precision import lower_precision_copy

DEFAULT_OPSET = 17  # first opset with LayerNormalization, which TensorRT maps to its normalisation layer
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ExportedGraph:
    """One exported graph: its file, spec and the sha256 of the file."""

    name: str
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    sha256: str


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_weights(*models: torch.nn.Module | None) -> str:
    """Hex sha256 over the names, dtypes, shapes and bytes of every tensor in the models' state dicts."""
    digest = hashlib.sha256()
    for model in models:
        if model is None:
            digest.update(b"<none>")
            continue
        for name, tensor in model.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _expm1_symbolic(g, x):
    one = g.op("Constant", value_t=torch.tensor(1.0))
    return g.op("Sub", g.op("Exp", x), g.op("CastLike", one, x))


@contextlib.contextmanager
def _expm1_as_exp_minus_one(opset: int) -> Iterator[None]:
    torch.onnx.register_custom_op_symbolic("aten::expm1", _expm1_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::expm1", opset)


def check_onnx(path: str | Path, spec: GraphSpec) -> None:
    """onnx.checker with strict type / shape inference on ``path`` (by path, so external data also works) plus
    the spec's input / output names."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path), load_external_data=False).graph
    got_in = tuple(i.name for i in graph.input)
    got_out = tuple(o.name for o in graph.output)
    if got_in != spec.inputs or got_out != spec.outputs:
        raise RuntimeError(
            f"{path}: exported graph has inputs {got_in} / outputs {got_out}, expected {spec.inputs} / {spec.outputs}"
        )


def export_graph(
    name: str,
    i2p: I2P | None,
    l2w: L2W | None,
    path: str | Path,
    precision: str = "fp32",
    views: int = 3,
    opset: int = DEFAULT_OPSET,
) -> ExportedGraph:
    """Export graph ``name`` to ``path`` (float32 inputs / outputs; ``precision`` sets the inside of the graph).

    ``views``: the window size of the traced example; the view and batch axes stay symbolic in the file.
    Raises RuntimeError when the exported file fails the check.
    """
    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNormalization), got {opset}")
    source = l2w if name == "l2w" else i2p
    if source is None:
        raise ValueError(f"the {name} graph needs {'an L2W' if name == 'l2w' else 'an I2P'} network")
    device = next(source.parameters()).device
    low = lower_precision_copy(source, precision)
    module, spec = build_graph(name, low if name != "l2w" else None, low if name == "l2w" else None)
    example = example_inputs(spec, source, views=views, device=device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _expm1_as_exp_minus_one(opset), warnings.catch_warnings(), torch.no_grad():
        # Shape checks inside the models compare traced sizes; they hold for every input the graph accepts.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            tuple(example[n] for n in spec.inputs),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=spec.dynamic_axes,
            do_constant_folding=True,
        )
    check_onnx(path, spec)
    return ExportedGraph(name, path, spec.inputs, spec.outputs, spec.dynamic_axes, sha256_file(path))


def export_all(
    i2p: I2P,
    l2w: L2W | None,
    out_dir: str | Path,
    precision: str = "fp32",
    names: tuple[str, ...] = GRAPH_NAMES,
    views: int = 3,
    opset: int = DEFAULT_OPSET,
    progress=None,
) -> dict[str, ExportedGraph]:
    """Export ``names`` into ``out_dir`` as ``<name>.<precision>.onnx`` and write ``manifest.json``.

    The manifest records the weights hash, precision and each file's sha256 (see :func:`read_manifest`).
    ``progress``: optional callable(name) called before each export (e.g. a tqdm update).
    """
    out_dir = Path(out_dir)
    exported = {}
    for name in names:
        if progress is not None:
            progress(name)
        exported[name] = export_graph(name, i2p, l2w, out_dir / f"{name}.{precision}.onnx", precision, views, opset)
    write_manifest(out_dir, exported, hash_weights(i2p, l2w), precision, opset)
    return exported


def write_manifest(
    out_dir: Path, exported: dict[str, ExportedGraph], weights_hash: str, precision: str, opset: int
) -> Path:
    """Write ``manifest.json`` describing ``exported`` (merged with entries of other precisions already there)."""
    path = Path(out_dir) / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    entry = manifest.setdefault(precision, {})
    entry.update({"weights_hash": weights_hash, "opset": opset, "torch": torch.__version__})
    graphs = entry.setdefault("graphs", {})
    for name, g in exported.items():
        record = asdict(g)
        record["path"] = g.path.name  # relative: the folder may move
        record["dynamic_axes"] = {k: {str(a): lbl for a, lbl in v.items()} for k, v in g.dynamic_axes.items()}
        graphs[name] = record
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return path


def read_manifest(out_dir: str | Path, precision: str, weights_hash: str) -> dict[str, Path] | None:
    """Paths of the graphs exported for ``precision`` and these weights, or None when stale or incomplete.

    Stale: exported from other weights; incomplete: a graph file missing or changed since its export.
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text()).get(precision)
    except json.JSONDecodeError:
        return None
    if not entry or entry.get("weights_hash") != weights_hash:
        return None
    paths = {}
    for name, record in entry.get("graphs", {}).items():
        file = Path(out_dir) / record["path"]
        if not file.is_file() or sha256_file(file) != record["sha256"]:
            return None
        paths[name] = file
    return paths
