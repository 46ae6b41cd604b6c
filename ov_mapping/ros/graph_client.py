"""A small client of a running ov_mapping graph: watch diagnostics, wait for topics, call services.

Used by the demo, the benchmarks and the integration tests in place of ``ros2 topic`` / ``ros2 service`` (no ros2 CLI
installs from PyPI). It runs in its own rclpy context, so it can live beside other rclpy code in one process.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool

from ov_mapping.ros import graph
from ov_mapping.ros.qos import LATCHED_QOS


class GraphClient:
    def __init__(self, name: str = "ov_mapping_client") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.player_done = False
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.node.create_subscription(Bool, graph.TOPIC_PLAYER_DONE, self._on_done, LATCHED_QOS)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name.split("/")[-1]] = {kv.key: kv.value for kv in status.values}

    def _on_done(self, msg: Bool) -> None:
        self.player_done = self.player_done or msg.data

    def value(self, node_name: str, key: str, default: float = 0.0) -> float:
        try:
            return float(self.diagnostics.get(node_name, {}).get(key, default))
        except ValueError:
            return default

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def subscribe(self, msg_type, topic: str, qos, callback: Callable[[Any], None]):
        return self.node.create_subscription(msg_type, topic, callback, qos)

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """Call a service and wait for the answer; raises TimeoutError when none comes."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                raise TimeoutError(f"service {name} not available after {timeout:.0f} s")
            future = client.call_async(request)
            if not self.spin_until(future.done, timeout):
                raise TimeoutError(f"service {name} did not answer in {timeout:.0f} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> "GraphClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_message(client: GraphClient, msg_type, topic: str, qos, timeout: float) -> Optional[Any]:
    """The first message on ``topic`` within ``timeout`` seconds, or None."""
    received = []
    subscription = client.subscribe(msg_type, topic, qos, received.append)
    try:
        client.spin_until(lambda: bool(received), timeout)
        return received[0] if received else None
    finally:
        client.node.destroy_subscription(subscription)
