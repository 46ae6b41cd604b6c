"""The ``ov-mapping`` command: launch the graph, run the demo, benchmarks and offline tools.

    ov-mapping launch [--input PATH|synthetic] [--params FILE]   start the nodes (Ctrl-C stops them all)
    ov-mapping demo [--input PATH] [--out DIR]                   play a sequence through the graph, write map + report
    ov-mapping download-weights NAME...                          fetch registered model weights (checksummed)
    ov-mapping export-engines [--config NAME] [--backend ...]    export CLIP3R to ONNX, build TensorRT engines
    ov-mapping evaluate-semantics --gt FILE --pred FILE          mIoU / mAcc of a labelled cloud (table + JSON)
    ov-mapping params                                            list every node parameter with its description
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_launch(args) -> int:
    from ov_mapping.ros import graph
    from ov_mapping.tools import launcher

    specs = list(graph.PIPELINE)
    extra = {}
    if args.input:
        specs.append(graph.PLAYER)
        extra[graph.PLAYER.name] = {"input": args.input, "exit_when_done": False}
    return launcher.run(specs, args.params, extra)


def _cmd_demo(args) -> int:
    from ov_mapping.tools import demo

    semantic = None
    if args.semantic_check:
        if not args.clip_weights:
            raise SystemExit("--semantic-check needs --clip-weights (and --clip-config for a custom architecture)")
        semantic = demo.SemanticCheck(args.clip_weights, args.clip_config, args.clip_model)
    return demo.run_demo(args.input, Path(args.out), rate=args.rate, frames=args.frames, timeout=args.timeout,
                         odometry=args.odometry, semantic=semantic)


def _cmd_params(args) -> int:  # noqa: ARG001
    from ov_mapping.tools.param_docs import describe_all

    print(describe_all())
    return 0


def _cmd_download(args) -> int:
    from ov_mapping.models import download

    return download.run(args)


def _cmd_export(args) -> int:
    from ov_mapping.engines import cli as engines_cli

    return engines_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ov-mapping", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("launch", help="start the node graph as separate processes")
    p.add_argument("--input", default="", help="also play this sequence ('synthetic', a folder or a rosbag2)")
    p.add_argument("--params", default=None, type=Path, help="parameters file (default: config/ov_mapping.yaml)")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("demo", help="play a sequence through the whole graph and write the map, a picture, a report")
    p.add_argument("--input", default="synthetic", help="'synthetic' (default), a 7-Scenes/TUM folder or a rosbag2")
    p.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0 = real time)")
    p.add_argument("--frames", type=int, default=0, help="play at most this many frames (0 = all)")
    p.add_argument("--timeout", type=float, default=170.0, help="give up after this many seconds")
    p.add_argument("--odometry", action="store_true",
                   help="estimate camera poses with RGB-D odometry instead of using the recording's poses")
    p.add_argument("--semantic-check", action="store_true",
                   help="score semantics against the synthetic scene's ground truth (writes semantic.json)")
    p.add_argument("--clip-weights", default="", help="CLIP checkpoint (or pretrained tag) for the semantic check")
    p.add_argument("--clip-config", default="", help="JSON config of a custom CLIP architecture")
    p.add_argument("--clip-model", default="", help="open_clip architecture of --clip-weights")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("download-weights", help="download registered model weights")
    from ov_mapping.models import download

    download.add_arguments(p)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("export-engines", help="export CLIP3R graphs to ONNX and build TensorRT engines")
    from ov_mapping.engines import cli as engines_cli

    engines_cli.add_arguments(p)
    p.set_defaults(func=_cmd_export)

    # Listed for --help; main() hands its arguments to the evaluation's own parser untouched.
    sub.add_parser("evaluate-semantics", help="per-class IoU / Acc of a labelled point cloud against ground truth")

    p = sub.add_parser("params", help="list every node parameter")
    p.set_defaults(func=_cmd_params)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["evaluate-semantics"]:
        from ov_mapping.evaluation import semantics

        return semantics.main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
