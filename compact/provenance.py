"""Provenance and atomic artifacts.

Every artifact directory holds ``manifest.json``: the resolved config, its hash, the git commit, the
package versions and the hardware. Artifacts are built in a temporary sibling directory and renamed
into place only when complete, so a failed run never publishes partial output nor overwrites a good
cached artifact.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from .config import config_hash, to_dict
from .errors import ArtifactError
from .paths import artifacts_dir, repo_root

MANIFEST = "manifest.json"
_PACKAGES = ("compact", "torch", "transformers", "accelerate", "datasets", "tokenizers", "peft",
             "numpy", "safetensors")


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether the tree had uncommitted changes (None outside git)."""
    root = repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": dirty if sha else None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def manifest(cfg: Any = None, *, kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance record written next to every artifact."""
    out: dict[str, Any] = {
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(),
        "packages": package_versions(),
        "hardware": hardware(),
    }
    if cfg is not None:
        out["config_hash"] = config_hash(cfg)
        out["config"] = to_dict(cfg)
    if extra:
        out.update(extra)
    return out


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=False, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    if not p.is_file():
        raise ArtifactError(f"no manifest at {p}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{p}: unreadable manifest ({exc.msg} at line {exc.lineno})") from None


def artifact_path(kind: str, cfg: Any, name: str | None = None, root: Path | None = None) -> Path:
    """Where the artifact of ``kind`` produced by ``cfg`` lives: ``<root>/<kind>/<name>-<hash>``."""
    h = config_hash(cfg)
    base = root if root is not None else artifacts_dir()
    return base / kind / (f"{name}-{h}" if name else h)


def is_complete(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


@contextlib.contextmanager
def atomic_dir(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``final`` (only then), on failure it vanishes.

    With ``overwrite=False`` an existing complete ``final`` is an error (callers check the cache first).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite and is_complete(final):
        raise ArtifactError(f"artifact already exists: {final}")
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
