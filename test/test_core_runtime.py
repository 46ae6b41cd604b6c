"""Pure runtime helpers the nodes rely on: parameter specs, the drop-oldest worker, stamp sync."""

import threading
import time

import pytest

from ov_mapping.core.params import ParamSpec, validate_all
from ov_mapping.core.sync import StampSynchronizer
from ov_mapping.core.worker import DropOldestWorker


def test_param_spec_refuses_wrong_type_range_and_choice():
    voxel = ParamSpec("voxel_size", 0.02, "voxel edge", min_value=0.001, max_value=1.0)
    assert voxel.validate(0.05) is None
    assert voxel.validate(1) is None  # an int where a float is declared is fine
    assert "voxel_size must be >= 0.001" in voxel.validate(0.0)
    assert "<= 1.0" in voxel.validate(2.0)
    assert "must be float" in voxel.validate("big")
    assert "NaN" in voxel.validate(float("nan"))
    mode = ParamSpec("mode", "rgbd", "mode", choices=("rgbd", "rgb"))
    assert "one of" in mode.validate("lidar")
    flag = ParamSpec("flag", True, "flag")
    assert flag.validate(1) is not None  # ints are not bools
    count = ParamSpec("count", 3, "count", min_value=1)
    assert count.validate(True) is not None  # bools are not ints


def test_param_spec_rejects_bad_defaults_and_unknown_names():
    with pytest.raises(ValueError, match="default"):
        ParamSpec("rate", -1.0, "rate", min_value=0.0)
    with pytest.raises(ValueError, match="typed default"):
        ParamSpec("thing", None, "thing")
    specs = (ParamSpec("rate", 1.0, "rate", min_value=0.0),)
    assert validate_all(specs, {"rate": 2.0}) == []
    errors = validate_all(specs, {"rat": 2.0, "rate": -3.0})
    assert any("unknown parameter 'rat'" in e for e in errors) and any(">= 0.0" in e for e in errors)


def test_worker_drops_oldest_when_full_and_survives_errors():
    gate = threading.Event()
    done = []

    def process(item):
        gate.wait(5)
        if item == "bad":
            raise RuntimeError("boom")
        done.append(item)

    errors = []
    worker = DropOldestWorker(process, max_queue=2, on_error=lambda item, exc: errors.append((item, str(exc))))
    try:
        worker.submit("first")  # taken by the thread, blocks on the gate
        time.sleep(0.2)
        assert worker.submit("a") and worker.submit("bad")
        assert not worker.submit("c")  # queue full: "a" is dropped
        gate.set()
        assert worker.wait_idle(5)
        assert done == ["first", "c"]
        assert errors == [("bad", "boom")]
        assert worker.stats.dropped == 1 and worker.stats.failed == 1 and worker.stats.processed == 2
    finally:
        worker.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        worker.submit("late")
    with pytest.raises(ValueError):
        DropOldestWorker(lambda item: None, max_queue=0)


def test_synchronizer_pairs_by_stamp_and_counts_unpaired():
    sync = StampSynchronizer(tolerance=0.01)
    assert sync.add_colour(1.000, "c1") is None
    assert sync.add_depth(1.004, "d1") == ("c1", "d1")
    assert sync.add_colour(2.000, "c2") is None  # its depth never comes
    assert sync.add_colour(3.000, "c3") is None
    assert sync.add_depth(3.002, "d3") == ("c3", "d3")
    assert sync.paired == 2 and sync.unsynchronised == 1  # c2 was older than the pair and dropped
    assert sync.add_depth(5.0, "d5") is None and sync.add_colour(5.5, "c5") is None  # beyond tolerance
    with pytest.raises(ValueError):
        StampSynchronizer(tolerance=0.0)
