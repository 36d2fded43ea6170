"""Logging and progress bars: quiet under CI and papermill, informative at a terminal."""
from __future__ import annotations

import logging
import os
import random
import sys
import warnings
from typing import Iterable, TypeVar

import numpy as np
import torch
from tqdm import tqdm

T = TypeVar("T")

LOGGER_NAME = "compact"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


class _Stderr(logging.StreamHandler):
    """A handler that writes to the ``sys.stderr`` of the moment it emits, not the one it was made with: a
    process that swaps stderr (pytest's capture, a notebook kernel) after the first call of
    :func:`setup_logging` would otherwise log into a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property reads sys.stderr instead
        pass


def setup_logging(level: int | str = "INFO") -> None:
    """Configure the package logger once (idempotent); messages go to the current stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    logger.setLevel(level)
    if not any(getattr(h, "_compact", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._compact = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def quiet() -> bool:
    """True under CI, papermill (``COMPACT_QUIET``), or when stderr is not a terminal; an interactive Jupyter
    kernel (whose stderr is not a terminal either) shows progress, so a long cell is never silent."""
    if os.environ.get("COMPACT_PROGRESS") == "1":
        return False
    if os.environ.get("CI") or os.environ.get("COMPACT_QUIET") == "1":
        return True
    if "ipykernel" in sys.modules:
        return False
    return not sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, **kwargs) -> Iterable[T]:
    """tqdm, disabled when :func:`quiet`."""
    bar = tqdm
    if quiet():  # plain tqdm: tqdm.auto would probe for ipywidgets inside kernels and warn
        kwargs["disable"] = True
    else:  # local: importing tqdm.auto probes for ipywidgets, which only a visible bar needs
        from tqdm.auto import tqdm as bar
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return bar(iterable, **kwargs)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU determinism; CUDA best effort)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def quiet_progress_bars() -> None:
    """No third-party progress bars or widget warnings (CI logs, pipeline workers, executed notebooks): the
    environment switches Hugging Face libraries read when first imported, and their switches when already
    imported; tqdm.auto's "IProgress not found" warning inside kernels without ipywidgets is silenced."""
    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(var, "1")
    warnings.filterwarnings("ignore", message="IProgress not found")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
