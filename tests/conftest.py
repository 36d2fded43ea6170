"""Shared fixtures. Heavy artifacts go to a session temp dir unless COMPACT_ARTIFACTS is set."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("COMPACT_QUIET", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
