"""The one ``main()`` every ov_mapping node runs: init, build, spin, shut down cleanly on Ctrl-C.

A node whose parameters are refused raises ValueError while it is built: that ends the process with exit code 2 and
the reason on stderr, not a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(build: Callable[[], Node], args: Optional[list] = None,
             run: Optional[Callable[[Node], None]] = None) -> int:
    """Build the node and spin it (or call ``run(node)``) until shutdown; returns the process exit code."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = build()
        if run is None:
            rclpy.spin(node)
        else:
            run(node)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (ValueError, FileNotFoundError, ParameterException) as exc:  # refused parameters or inputs
        print(f"[{node.get_name() if node else 'ov_mapping'}] error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
