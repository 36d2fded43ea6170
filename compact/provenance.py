"""Provenance and atomic artifacts.

Every artifact directory holds ``manifest.json``: the resolved config, its hash, the git commit, the
package versions and the hardware. Artifacts are built in a temporary sibling directory and renamed
into place only when complete, so a failed run never publishes partial output nor overwrites a good
cached artifact.

Integrity helpers used by every stage:

* :func:`atomic_dir` publishes a directory; an existing one is swapped with the new one in a single
  ``renameat2(RENAME_EXCHANGE)`` (Linux), so a reader never finds the artifact missing. The temporary
  ``.<name>.partial-<owner>-...`` folders carry their owner (host, pid, process start time): a later
  run removes those whose owner is dead (SIGKILL, power loss), see :func:`clean_stale_partials`.
  A non-empty folder without a manifest outside the artifacts root is never replaced: the project did
  not write it.
* :func:`file_lock` serialises processes working on the same artifact (``fcntl.flock``).
* :func:`storage_guard` turns a full, read-only or forbidden disk into one :class:`ArtifactError` line.
* :func:`append_jsonl` / :func:`read_jsonl_tail` write logs line-atomically and read them back
  tolerating (and reporting) a last line torn by a kill.
* :func:`file_sha256` / :func:`tree_fingerprint` are the content hashes caches are keyed by.
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from .config import config_hash, to_dict
from .errors import ArtifactError, CompactError, DataError
from .paths import artifacts_dir, repo_root

try:  # POSIX only; elsewhere file_lock is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger("compact.provenance")

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


# ---------------------------------------------------------------------------------------------------------
# owners of temporary folders: host, pid and the process's start time (pid reuse cannot fake a live owner)

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<what>partial|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-")
# a temporary folder of another host (shared file system) or of an older version of this code (no owner in
# its name) is only removed once it is this old
STALE_AGE_S = 24 * 3600.0


def _process_start(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), 0 when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


_OWNER = f"{_HOST}-{os.getpid()}-{_process_start(os.getpid())}"
_STARTED = time.time()  # this process's start, as far as partial folders are concerned


def _owner() -> str:
    global _OWNER
    if not _OWNER.startswith(f"{_HOST}-{os.getpid()}-"):  # forked
        _OWNER = f"{_HOST}-{os.getpid()}-{_process_start(os.getpid())}"
    return _OWNER


def _pid_alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    now = _process_start(pid)
    return not (start and now and now != start)  # the pid was reused by a younger process


def _newest_mtime(p: Path) -> float:
    """The latest modification time of a folder and its direct entries (a file being written keeps it fresh)."""
    newest = p.lstat().st_mtime
    with contextlib.suppress(OSError):
        for entry in os.scandir(p):
            with contextlib.suppress(OSError):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _is_stale(p: Path) -> bool:
    """A temporary folder whose owner is gone (same host) and that nobody touched since this process started,
    or one that is very old (another host, or no owner in its name)."""
    try:
        newest = _newest_mtime(p)
    except FileNotFoundError:
        return False
    m = _TEMP_RE.match(p.name)
    if m and m["host"] == _HOST:
        # both conditions: a live writer in another pid namespace on this host cannot look dead and idle
        return not _pid_alive(int(m["pid"]), int(m["start"])) and newest < _STARTED
    return time.time() - newest > STALE_AGE_S


def _is_temp(p: Path, name: str | None = None) -> bool:
    m = _TEMP_RE.match(p.name)
    if m:
        return name is None or m["name"] == name
    legacy = re.match(r"^\.(?P<name>.+)\.(partial|old)-", p.name)
    return bool(legacy) and (name is None or legacy["name"] == name)


def clean_stale_partials(parent: str | Path, name: str | None = None, *, recursive: bool = False,
                         max_depth: int = 4) -> list[Path]:
    """Remove temporary folders that a killed process left in ``parent`` (for ``name`` only, when given).

    Only folders named by :func:`atomic_dir` are touched, and only when their owner is dead (same host) or
    they are older than :data:`STALE_AGE_S`. A stale ``.old-`` folder whose artifact is missing (a kill
    between the two renames of the fallback swap) is renamed back into place instead of being removed.
    Returns what was removed or restored.
    """
    parent = Path(parent)
    done: list[Path] = []
    if not parent.is_dir():
        return done
    try:
        entries = list(parent.iterdir())
    except OSError:
        return done
    for p in entries:
        if p.is_dir() and not p.is_symlink() and _is_temp(p, name) and _is_stale(p):
            m = _TEMP_RE.match(p.name) or re.match(r"^\.(?P<name>.+)\.(?P<what>partial|old)-", p.name)
            final = parent / m["name"]
            if m["what"] == "old" and not final.exists() and is_complete(p):
                with contextlib.suppress(OSError):
                    os.rename(p, final)
                    _log.warning("restored %s from %s (a swap was interrupted)", final, p.name)
                    done.append(final)
                    continue
            shutil.rmtree(p, ignore_errors=True)
            if not p.exists():
                _log.info("removed %s, left by an interrupted run", p)
                done.append(p)
        elif recursive and max_depth > 1 and p.is_dir() and not p.is_symlink() and not _is_temp(p):
            done += clean_stale_partials(p, name, recursive=True, max_depth=max_depth - 1)
    return done


# ---------------------------------------------------------------------------------------------------------
# publishing a directory

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when unsupported here."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EPERM):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def _publish(tmp: Path, final: Path) -> None:
    """Put ``tmp`` at ``final``; an existing ``final`` is exchanged, so ``final`` never goes missing."""
    try:
        os.rename(tmp, final)  # nothing there yet (or an empty directory)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
    if _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous artifact
        return
    # fallback (no RENAME_EXCHANGE): two renames; a kill in between is repaired by clean_stale_partials
    old = final.with_name(f".{final.name}.old-{_owner()}-{os.urandom(4).hex()}")
    os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _foreign(final: Path) -> bool:
    """A non-empty folder outside the artifacts root that holds no project manifest."""
    if not final.is_dir() or is_complete(final):
        return False
    try:
        if not any(final.iterdir()):
            return False
    except OSError:
        return True
    root = artifacts_dir().resolve()
    return not final.resolve().is_relative_to(root)


@contextlib.contextmanager
def atomic_dir(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``final`` (only then), on failure it vanishes.

    With ``overwrite=False`` an existing complete ``final`` is an error (callers check the cache first).
    A non-empty ``final`` that has no manifest and lies outside the artifacts root is never replaced
    (the project did not write it). Temporary folders that killed runs left for ``final`` are removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite and is_complete(final):
        raise ArtifactError(f"artifact already exists: {final}")
    if final.exists() and not final.is_dir():
        raise ArtifactError(f"{final} exists and is not a folder: refusing to replace it")
    if _foreign(final):
        raise ArtifactError(f"{final} is a non-empty folder that compact did not write (no {MANIFEST}): "
                            "refusing to replace it; choose a new or empty folder")
    clean_stale_partials(final.parent, final.name)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-{_owner()}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# locks

@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing, never removed: removing a lock file
    races with its next user). ``wait=False``: an :class:`ArtifactError` naming the holder when taken."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = json.loads(Path(path).read_text() or "{}")
                except (OSError, ValueError):
                    holder = {}
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "another process")
                if not wait:
                    raise ArtifactError(f"{what or path} is in use by {who} (lock file {path}); wait for it to "
                                        "finish or run without --no-wait") from None
                _log.warning("waiting for %s: in use by %s (lock file %s)", what or path, who, path)
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": _dt.datetime.now().isoformat(timespec="seconds")}).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------------------------------------
# storage failures as one line

_STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_STORAGE_TEXT = {"No space left on device": "no space left on device", "StorageFull": "no space left on device",
                 "Disk quota exceeded": "disk quota exceeded", "Read-only file system": "read-only file system",
                 "ReadOnlyFilesystem": "read-only file system", "Permission denied": "permission denied",
                 "PermissionDenied": "permission denied", "file write failed": "a file write failed (disk full?)"}


def storage_problem(exc: BaseException) -> str | None:
    """'<file>: <reason>' when ``exc`` (or its cause) is a full, read-only or forbidden disk, else None."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            where = e.filename if e.filename is not None else ""
            return f"{where}: {os.strerror(e.errno).lower()}" if where else os.strerror(e.errno).lower()
        text = str(e)
        for needle, reason in _STORAGE_TEXT.items():
            if needle in text:
                return reason
        e = e.__cause__ or e.__context__
        seen += 1
    return None


@contextlib.contextmanager
def storage_guard(what: str | Path) -> Iterator[None]:
    """Turn a write that fails for lack of space or permission into one :class:`ArtifactError` line."""
    try:
        yield
    except CompactError:
        raise
    except Exception as exc:  # re-raised unless it is a storage failure
        reason = storage_problem(exc)
        if reason is None:
            raise
        raise ArtifactError(f"cannot write {what}: {reason}") from None


# ---------------------------------------------------------------------------------------------------------
# line-atomic JSONL logs

def append_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Append each record as ONE ``write`` of a complete line (O_APPEND), then flush to the file system.

    A kill between records leaves whole lines; a kill inside a write can at worst tear the last line,
    which :func:`read_jsonl_tail` drops on resume.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for rec in records:
            data = (json.dumps(rec) + "\n").encode()
            while data:
                n = os.write(fd, data)
                data = data[n:]
    finally:
        os.close(fd)


def read_jsonl_tail(path: str | Path) -> tuple[list[Any], int]:
    """Records of a log written by :func:`append_jsonl`, and the size in bytes of a torn last line (0: none).

    Only the LAST line may be torn (cut short by a kill: no newline, or not a JSON object); a bad line
    anywhere else is a :class:`DataError` naming the file and the line.
    """
    path = Path(path)
    complete, sep, tail = path.read_bytes().rpartition(b"\n")
    lines = complete.split(b"\n") if sep else []
    out: list[Any] = []
    torn = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            out.append(rec)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if i == len(lines) - 1 and not tail.strip():
                torn = len(line) + 1
                break
            raise DataError(f"invalid JSON ({getattr(exc, 'msg', exc)})", path=str(path),
                            record=f"line {i + 1}") from None
    if tail.strip():
        try:  # a last line that lost only its newline is kept
            rec = json.loads(tail)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            out.append(rec)
        except ValueError:
            torn = len(tail)
    return out, torn


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace a file atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def rewrite_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Replace a JSONL file atomically (temp file + rename)."""
    atomic_write_text(path, "".join(json.dumps(rec) + "\n" for rec in records))


# ---------------------------------------------------------------------------------------------------------
# content hashes

_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path, *, memo: bool = True) -> str:
    """The full sha256 hex digest of a file (memoised per process by path, size and mtime unless ``memo``
    is False: verification must read the bytes, a flipped bit changes neither size nor mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO or not memo:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def tree_fingerprint(path: str | Path, *, skip_hidden: bool = True) -> str:
    """A content hash of a file, or of every file under a folder (relative names and bytes)."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)[:16]
    if not p.is_dir():
        return "missing"
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if skip_hidden and any(part.startswith(".") for part in rel.parts):
            continue
        if f.is_file():
            h.update(str(rel).encode() + b"\0" + file_sha256(f).encode() + b"\n")
    return h.hexdigest()[:16]
