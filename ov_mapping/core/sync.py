"""Pair colour and depth frames by stamp, within a tolerance: what message_filters' approximate sync does, in a few lines.

Each stream keeps a short buffer. When a pair within ``tolerance`` exists, the closest one is emitted and everything
older on both streams is discarded and counted as unsynchronised.
"""

from __future__ import annotations

import collections
from typing import Any, Optional


class StampSynchronizer:
    def __init__(self, tolerance: float = 0.02, buffer_size: int = 10) -> None:
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0 s, got {tolerance}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.tolerance = tolerance
        self._colour: collections.deque = collections.deque(maxlen=buffer_size)
        self._depth: collections.deque = collections.deque(maxlen=buffer_size)
        self.paired = 0
        self.unsynchronised = 0

    def add_colour(self, stamp: float, item: Any) -> Optional[tuple[Any, Any]]:
        """Add a colour frame; returns (colour_item, depth_item) when it completes a pair."""
        self._push(self._colour, stamp, item)
        return self._match()

    def add_depth(self, stamp: float, item: Any) -> Optional[tuple[Any, Any]]:
        self._push(self._depth, stamp, item)
        return self._match()

    def _push(self, buffer: collections.deque, stamp: float, item: Any) -> None:
        if len(buffer) == buffer.maxlen:
            self.unsynchronised += 1  # the oldest frame leaves unpaired
        buffer.append((stamp, item))

    def _match(self) -> Optional[tuple[Any, Any]]:
        best = None
        for i, (tc, _) in enumerate(self._colour):
            for j, (td, _) in enumerate(self._depth):
                gap = abs(tc - td)
                if gap <= self.tolerance and (best is None or gap < best[0]):
                    best = (gap, i, j)
        if best is None:
            return None
        _, i, j = best
        colour = self._colour[i][1]
        depth = self._depth[j][1]
        # Frames older than the pair can no longer pair with anything newer: drop and count them.
        self.unsynchronised += i + j
        for _ in range(i + 1):
            self._colour.popleft()
        for _ in range(j + 1):
            self._depth.popleft()
        self.paired += 1
        return colour, depth
