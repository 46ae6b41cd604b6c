"""``ov-mapping launch``: start the node graph as separate processes, the way ``robot.launch.py`` does.

Each node runs as its own Python process with the graph's parameters file and remappings and the Fast DDS profile for
large messages. Their output is forwarded line by line with the node's name in front. Ctrl-C (SIGINT) or SIGTERM stops
every node and the launcher exits 0; if a node dies on its own, the others are stopped and the launcher exits with
that node's code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Sequence

from ov_mapping.ros import graph


@dataclass
class RunningNode:
    spec: graph.NodeSpec
    process: subprocess.Popen
    forwarder: threading.Thread


def node_environment(base: Optional[dict] = None) -> dict:
    """The environment every node gets: the caller's, plus the Fast DDS profile unless one is already chosen."""
    env = dict(os.environ if base is None else base)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(graph.fastdds_profile_file()))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env["PYTHONUNBUFFERED"] = "1"
    # Nodes import the same ov_mapping as the launcher (a checkout or the install).
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def node_command(spec: graph.NodeSpec, params_file: Path, extra_params: Optional[dict] = None) -> list[str]:
    return [sys.executable, "-m", spec.module] + graph.ros_arguments(spec, params_file, extra_params)


def _forward(prefix: str, stream: IO[bytes], out: IO[str], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            out.write(f"[{prefix}] {line}\n")
            out.flush()
    stream.close()


class Launcher:
    """Starts, watches and stops a set of nodes."""

    def __init__(self, specs: Sequence[graph.NodeSpec], params_file: Optional[Path] = None,
                 extra_params: Optional[dict[str, dict]] = None, env: Optional[dict] = None,
                 out: IO[str] = sys.stdout) -> None:
        self.specs = list(specs)
        self.params_file = Path(params_file) if params_file else graph.default_params_file()
        if not self.params_file.is_file():
            raise FileNotFoundError(f"parameters file not found: {self.params_file}")
        self.extra_params = extra_params or {}
        self.env = node_environment(env)
        self.out = out
        self.nodes: list[RunningNode] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for spec in self.specs:
            command = node_command(spec, self.params_file, self.extra_params.get(spec.name))
            process = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            forwarder = threading.Thread(target=_forward, args=(spec.name, process.stdout, self.out, self._lock),
                                         daemon=True)
            forwarder.start()
            self.nodes.append(RunningNode(spec, process, forwarder))
            self._say(f"started {spec.name} (pid {process.pid})")

    def poll(self) -> Optional[tuple[str, int]]:
        """(name, exit code) of the first node that has exited, or None while all run."""
        for node in self.nodes:
            code = node.process.poll()
            if code is not None:
                return node.spec.name, code
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every node (rclpy shuts down cleanly on it), then SIGKILL whatever is still alive after ``timeout``."""
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"{node.spec.name} did not stop in {timeout:.0f} s; killing it")
                node.process.kill()
                node.process.wait()
        for node in self.nodes:
            node.forwarder.join(timeout=2.0)

    def _say(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[launch] {text}\n")
            self.out.flush()


def run(specs: Sequence[graph.NodeSpec], params_file: Optional[Path] = None,
        extra_params: Optional[dict[str, dict]] = None, stop_when: Optional[str] = None) -> int:
    """Run the graph until Ctrl-C, or until the node named ``stop_when`` exits by itself (0 when it succeeded)."""
    launcher = Launcher(specs, params_file, extra_params)
    stop_requested = threading.Event()

    def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop_requested.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        launcher.start()
        while not stop_requested.wait(0.2):
            finished = launcher.poll()
            if finished is not None:
                name, code = finished
                if name == stop_when and code == 0:
                    launcher._say(f"{name} finished")
                else:
                    launcher._say(f"{name} exited with code {code}; stopping the others")
                    exit_code = code or 1
                break
    finally:
        launcher.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return exit_code
