"""One CLIP3R inference interface, several runtimes: PyTorch, ONNX Runtime and TensorRT.

    runner = make_runner("onnxruntime", "small", i2p_weights=..., l2w_weights=...)
    tokens = runner.encode(images)                        # images (B, 3, 224, 224) float32 -> B token handles
    views = runner.i2p(tokens[:5], ref_index=2)           # 5 ViewPointmap(pts3d, conf), reference frame
    scores = runner.retrieval(tokens[:3], tokens[3:5])    # (3, 2, 196) scores >= 1
    regs = runner.l2w(tokens[:3], scene_pts, tokens[3:5], key_pts)   # 2 Registration(pts3d, conf, features)

The runner implements ``ov_mapping.reconstruction.clip3r_stream.Clip3rRunner``.
onnxruntime and tensorrt are imported only when their backend is used.
"""

from .factory import BACKENDS, check_backend, default_artifacts_dir, make_runner
from .graphs import GRAPH_NAMES, GraphSpec
from .runner import EngineRunner, Registration, ViewPointmap

__all__ = ["BACKENDS", "GRAPH_NAMES", "EngineRunner", "GraphSpec", "check_backend", "default_artifacts_dir",
           "make_runner", "Registration", "ViewPointmap"]
