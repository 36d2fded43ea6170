"""Every path the project uses resolves here, never against the current directory.

Notebooks run from ``notebooks/`` under papermill and from ``book/`` under Jupyter Book; tests run from
anywhere. Environment variables override the defaults so CI and users can redirect heavy outputs.
"""
from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout root (``COMPACT_ROOT`` overrides; falls back to the package's parent)."""
    env = os.environ.get("COMPACT_ROOT")
    if env:
        return Path(env).resolve()
    return _PKG_DIR.parent


def artifacts_dir() -> Path:
    """Heavy, regenerable outputs (worlds, stores, checkpoints): ``COMPACT_ARTIFACTS`` or ``artifacts/``."""
    env = os.environ.get("COMPACT_ARTIFACTS")
    return Path(env).resolve() if env else repo_root() / "artifacts"


def results_dir() -> Path:
    """Committed tables, figures and manifests the book shows (``COMPACT_RESULTS`` overrides)."""
    env = os.environ.get("COMPACT_RESULTS")
    return Path(env).resolve() if env else repo_root() / "results"


def configs_dir() -> Path:
    return repo_root() / "configs"


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def book_dir() -> Path:
    return repo_root() / "book"


def shared_dir() -> Path:
    """The team's shared folder beside the checkout (fixtures, method notes)."""
    return repo_root().parent / "shared"


def reference_fixture_dir() -> Path:
    """The reference-mode fixture: ``COMPACT_REFERENCE_FIXTURE``, else ../shared, else the vendored copy."""
    env = os.environ.get("COMPACT_REFERENCE_FIXTURE")
    if env:
        return Path(env).resolve()
    shared = shared_dir() / "fixtures" / "reference_step_k4"
    if shared.is_dir():
        return shared
    return repo_root() / "tests" / "fixtures" / "reference_step_k4"


def resolve(path: str | os.PathLike) -> Path:
    """A user-given path: absolute stays, relative is taken from the repo root (not the cwd)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root() / p)
