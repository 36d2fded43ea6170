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


@pytest.fixture
def await_checkpoints():
    """``wait(root, proc, n)``: poll ``root/runs/.<run>.work/checkpoints`` until ``n`` checkpoints exist while
    ``proc`` still runs; returns that checkpoints folder (fails the test if the run ended or 240 s passed)."""
    import time

    from compact.trainer.checkpoint import list_checkpoints

    def wait(root, proc, n: int = 2):
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            works = list((root / "runs").glob(".*.work")) if (root / "runs").is_dir() else []
            if works and len(list_checkpoints(works[0] / "checkpoints")) >= n:
                return works[0] / "checkpoints"
            time.sleep(0.05)
        pytest.fail("the run ended (or took too long) before it could be killed")

    return wait
