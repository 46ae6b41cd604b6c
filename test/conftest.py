"""Test-wide settings: each test process talks DDS on its own random domain, on this host only."""

import os
import random
from pathlib import Path

import pytest

# Set before any rclpy import so every node started by these tests (in-process or child) shares them.
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 101))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                      str(Path(__file__).resolve().parents[1] / "config" / "fastdds_large_messages.xml"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (real camera sequences are shared beside the repository)")
    return SHARED_DATA
