"""Publish a node's counters (frames in, dropped, processed, timings) on /diagnostics."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node


class DiagnosticsPublisher:
    """Calls ``collect()`` every ``period`` seconds and publishes its dict as one DiagnosticStatus.

    ``collect`` returns (level, message, values); level is "ok", "warn" or "error".
    """

    LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}

    def __init__(self, node: Node, collect, period: float = 1.0) -> None:
        self._node = node
        self._collect = collect
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._name = f"{node.get_namespace().strip('/')}/{node.get_name()}".strip("/")
        self._timer = node.create_timer(period, self.publish)

    def publish(self) -> None:
        level, message, values = self._collect()
        status = DiagnosticStatus(level=self.LEVELS[level], name=self._name, message=message,
                                  hardware_id=self._node.get_name(),
                                  values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
