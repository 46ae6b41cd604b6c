"""A background worker with a bounded drop-oldest queue.

Subscription callbacks only enqueue; slow work (models, map integration) runs here. When work arrives faster than it is
done, the oldest waiting item is dropped and counted, so latency and memory stay bounded instead of growing.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class WorkerStats:
    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: str = ""
    last_duration_s: float = 0.0
    total_duration_s: float = 0.0
    queue_depth: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class DropOldestWorker:
    """Runs ``process(item)`` on a thread for each submitted item, keeping at most ``max_queue`` waiting.

    ``on_error(item, exc)`` is called when ``process`` raises; the worker keeps going.
    """

    def __init__(self, process: Callable[[Any], None], max_queue: int = 2, name: str = "worker",
                 on_error: Optional[Callable[[Any, BaseException], None]] = None) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self._process = process
        self._on_error = on_error
        self._queue: collections.deque = collections.deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue ``item``; returns False when an older item had to be dropped to make room."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("worker is stopped")
            dropped = False
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.stats.dropped += 1
                dropped = True
            self._queue.append(item)
            self.stats.submitted += 1
            self.stats.queue_depth = len(self._queue)
            self._cond.notify()
        return not dropped

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the queue is empty and nothing is running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item = self._queue.popleft()
                self.stats.queue_depth = len(self._queue)
                self._busy = True
            start = time.perf_counter()
            try:
                self._process(item)
                ok = True
            except Exception as exc:  # a bad item must not kill the worker
                ok = False
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self._on_error is not None:
                    self._on_error(item, exc)
            duration = time.perf_counter() - start
            with self._cond:
                self._busy = False
                if ok:
                    self.stats.processed += 1
                else:
                    self.stats.failed += 1
                self.stats.last_duration_s = duration
                self.stats.total_duration_s += duration
                self._cond.notify_all()
