"""The results writer: tables and figures the book shows, each with its provenance.

``write_table(name, rows, provenance)`` writes ``results/tables/<name>.{csv,json,md}``;
``save_figure(fig, name, provenance)`` writes ``results/figures/<name>.{png,svg}``. Each artifact gets an
entry in ``results/manifest.json`` (config hash, git commit, packages, hardware, file hashes). Every file
is written atomically (temp file + rename). Figures are deterministic: a fixed ``svg.hashsalt`` and no
date or software stamp in the metadata, so re-running an unchanged analysis does not churn git diffs.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import config_hash, to_dict
from ..errors import DataError
from ..paths import results_dir
from ..provenance import git_commit, hardware, package_versions

INDEX = "manifest.json"
_SVG_SALT = "compact"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _clean(value: Any) -> Any:
    """JSON-safe scalars: numpy/torch numbers become Python numbers, NaN becomes None."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _rows(rows: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows from a DataFrame or a sequence of mappings; columns in first-seen order."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        records = rows.to_dict(orient="records")
        columns = [str(c) for c in rows.columns]
    else:
        records = [dict(r) for r in rows]
        columns = []
        for r in records:
            for k in r:
                if k not in columns:
                    columns.append(k)
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise DataError("a table row must be a mapping", record=i)
    return columns, [{c: _clean(r.get(c)) for c in columns} for r in records]


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]], digits: int) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(str(c)) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(esc(_fmt(r[c], digits)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else (json.dumps(r[c]) if isinstance(r[c], (list, dict)) else r[c])
                    for c in columns])
    return buf.getvalue()


def provenance_record(provenance: Mapping[str, Any] | None = None, cfg: Any = None) -> dict[str, Any]:
    """The index entry's provenance: config hash (from ``cfg`` or the given record), git, packages, hardware.

    No timestamp: an unchanged re-run must leave the index byte-identical.
    """
    prov = dict(_clean(dict(provenance or {})))
    prov.pop("created", None)
    if cfg is not None:
        prov.setdefault("config_hash", config_hash(cfg))
        prov.setdefault("config", to_dict(cfg))
    prov.setdefault("git", git_commit())
    prov.setdefault("packages", package_versions())
    prov.setdefault("hardware", hardware())
    return prov


def _update_index(root: Path, key: str, entry: dict[str, Any]) -> None:
    """Insert ``entry`` under ``key`` in ``<root>/manifest.json`` (file-locked read-modify-write)."""
    root.mkdir(parents=True, exist_ok=True)
    index_path = root / INDEX
    with open(root / f".{INDEX}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index: dict[str, Any] = {}
        if index_path.is_file():
            try:
                index = json.loads(index_path.read_text())
            except json.JSONDecodeError:
                index = {}
        index.setdefault("artifacts", {})[key] = entry
        index["artifacts"] = dict(sorted(index["artifacts"].items()))
        _atomic_write(index_path, (json.dumps(index, indent=1, sort_keys=True, default=str) + "\n").encode())


def _check_name(name: str) -> None:
    if not name or name.startswith(("/", ".")) or ".." in Path(name).parts:
        raise DataError(f"invalid artifact name {name!r} (a relative name like 'forgetting' or 'pca/shift')")


def write_table(name: str, rows: Any, provenance: Mapping[str, Any] | None = None, *, cfg: Any = None,
                root: str | Path | None = None, digits: int = 4, description: str = "") -> dict[str, Path]:
    """Write ``rows`` (DataFrame or list of dicts) as CSV, JSON and Markdown under ``results/tables/``.

    Returns the written paths by format. The JSON holds ``{"columns", "rows", "provenance"}``.
    """
    _check_name(name)
    base = Path(root) if root is not None else results_dir()
    columns, records = _rows(rows)
    prov = provenance_record(provenance, cfg)
    blobs = {
        "csv": _csv(columns, records).encode(),
        "json": (json.dumps({"name": name, "description": description, "columns": columns, "rows": records,
                             "provenance": prov}, indent=1, default=str) + "\n").encode(),
        "md": _markdown(columns, records, digits).encode(),
    }
    paths = {}
    for ext, data in blobs.items():
        p = base / "tables" / f"{name}.{ext}"
        _atomic_write(p, data)
        paths[ext] = p
    _update_index(base, f"tables/{name}", {
        "kind": "table", "description": description,
        "files": {ext: str(p.relative_to(base)) for ext, p in paths.items()},
        "sha256": {ext: _sha(d) for ext, d in blobs.items()}, "n_rows": len(records),
        "provenance": prov})
    return paths


def save_figure(fig: Any, name: str, provenance: Mapping[str, Any] | None = None, *, cfg: Any = None,
                root: str | Path | None = None, dpi: int = 150, description: str = "") -> dict[str, Path]:
    """Save a matplotlib figure as PNG and SVG under ``results/figures/`` (deterministic bytes)."""
    import matplotlib  # local: plotting only: matplotlib is imported where a figure is drawn

    _check_name(name)
    base = Path(root) if root is not None else results_dir()
    blobs = {}
    with matplotlib.rc_context({"svg.hashsalt": _SVG_SALT, "svg.fonttype": "path"}):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=dpi, metadata=meta, bbox_inches="tight")
            blobs[ext] = buf.getvalue()
    paths = {}
    for ext, data in blobs.items():
        p = base / "figures" / f"{name}.{ext}"
        _atomic_write(p, data)
        paths[ext] = p
    prov = provenance_record(provenance, cfg)
    _update_index(base, f"figures/{name}", {
        "kind": "figure", "description": description,
        "files": {ext: str(p.relative_to(base)) for ext, p in paths.items()},
        "sha256": {ext: _sha(d) for ext, d in blobs.items()}, "provenance": prov})
    return paths


def read_index(root: str | Path | None = None) -> dict[str, Any]:
    """The ``results/manifest.json`` index (empty when absent)."""
    p = (Path(root) if root is not None else results_dir()) / INDEX
    return json.loads(p.read_text()) if p.is_file() else {"artifacts": {}}


def read_table(name: str, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The rows of a table written by :func:`write_table`."""
    p = (Path(root) if root is not None else results_dir()) / "tables" / f"{name}.json"
    if not p.is_file():
        raise DataError("no such table", path=str(p))
    return json.loads(p.read_text())["rows"]


def figure_names(root: str | Path | None = None, prefix: str = "") -> list[str]:
    """The names of the figures in the results index (``prefix``: e.g. ``"dynamics/"``), in written order."""
    return [key[len("figures/"):] for key, entry in read_index(root)["artifacts"].items()
            if entry.get("kind") == "figure" and key.startswith(f"figures/{prefix}")]


def figure(name: str, root: str | Path | None = None):
    """A results figure's PNG for a notebook to display: the page shows the very file the results stage wrote
    (the same bytes: the browser check matches them), not a second drawing from the table."""
    from IPython.display import Image  # local: notebooks only

    p = (Path(root) if root is not None else results_dir()) / "figures" / f"{name}.png"
    if not p.is_file():
        raise DataError("no such figure (run the results stage: compact pipeline)", path=str(p))
    return Image(filename=str(p))


__all__ = ["write_table", "save_figure", "read_index", "read_table", "figure", "figure_names", "provenance_record"]

