"""Paths the tests share (importable as ``support``: pytest puts ``tests/`` on ``sys.path`` through its
root ``conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the small real datasets (k92, CIFAR ResNets, CIFAR-10 samples): $BRAINLID_REALDATA, else ../shared/realdata
REALDATA = Path(os.environ.get("BRAINLID_REALDATA", REPO.parent / "shared" / "realdata"))
