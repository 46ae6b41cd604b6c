"""One CLIP3R inference interface, several runtimes: PyTorch, ONNX Runtime and TensorRT.

    runner = make_runner("onnxruntime", "small", i2p_weights=..., l2w_weights=...)
    tokens = runner.encode(images)                        # images (B, 3, 224, 224) float32 -> B token handles
    views = runner.i2p(tokens[:5], ref_index=2)           # 5 ViewPointmap(pts3d, conf), reference frame
    scores = runner.retrieval(tokens[:3], tokens[3:5])    # (3, 2, 196) scores >= 1
    regs = runner.l2w(tokens[:3], scene_pts, tokens[3:5], key_pts)   # 2 Registration(pts3d, conf, features)

The runner implements :class:`Clip3rRunner` (``protocol.py``), the interface the streaming reconstruction calls;
``ViewPointmap`` and ``Registration`` are its result types. onnxruntime and tensorrt are imported only when their
backend is used.
"""

from .factory import BACKENDS, check_backend, default_artifacts_dir, make_runner
from .graphs import GRAPH_NAMES, GraphSpec
from .protocol import Clip3rRunner, Registration, ViewPointmap
from .runner import EngineRunner

__all__ = ["BACKENDS", "GRAPH_NAMES", "Clip3rRunner", "EngineRunner", "GraphSpec", "check_backend",
           "default_artifacts_dir", "make_runner", "Registration", "ViewPointmap"]
