"""Stamps and headers: ``builtin_interfaces/Time`` <-> float seconds."""

from __future__ import annotations

import math
from typing import Union

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from ov_mapping.ros.conversions.errors import ConversionError

_NS_PER_S = 1_000_000_000
_MAX_SEC = 2**31 - 1  # Time.sec is int32

Stamp = Union[float, int, Time]


def seconds_to_stamp(seconds: float) -> Time:
    """A Time message for ``seconds`` >= 0, rounded to the nearest nanosecond."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0 or seconds >= _MAX_SEC + 1:
        raise ConversionError(f"stamp must be finite seconds in [0, 2^31), got {seconds}")
    # Split before scaling: seconds * 1e9 would lose the nanoseconds of epoch-sized stamps.
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * _NS_PER_S)
    if nanosec == _NS_PER_S:
        sec, nanosec = sec + 1, 0
    return Time(sec=int(sec), nanosec=int(nanosec))


def stamp_to_seconds(stamp: Time) -> float:
    """Float seconds of a Time message (float64 keeps every nanosecond only below about 9e6 s; epoch stamps
    keep about 0.2 us)."""
    return stamp.sec + stamp.nanosec / _NS_PER_S


def make_header(stamp: Stamp = 0.0, frame_id: str = "") -> Header:
    """A Header from float seconds or a Time message (copied, so callers can reuse theirs)."""
    if isinstance(stamp, Time):
        stamp = Time(sec=stamp.sec, nanosec=stamp.nanosec)
    else:
        stamp = seconds_to_stamp(stamp)
    return Header(stamp=stamp, frame_id=str(frame_id))
