"""Execute the jupytext notebooks with papermill; a failed notebook is never published.

Each ``notebooks/NN_name.py`` (jupytext percent format, the source of truth) is paired with an
output-free ``NN_name.ipynb``. The pipeline converts the ``.py`` source, executes it with papermill in a
kernel bound to *this* interpreter (a private kernelspec, so a stale user-level ``compact`` kernel from
another checkout can never be picked), with ``notebooks/`` as working directory, and moves the result
into place only when every cell ran.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CompactError
from ..log import get_logger
from ..paths import artifacts_dir, notebooks_dir

log = get_logger("notebooks")
KERNEL_NAME = "compact"


class NotebookError(CompactError):
    """A notebook failed to execute; its partial output is kept aside, never published."""


def notebook_sources(directory: Path | None = None) -> list[Path]:
    """The jupytext sources ``NN_*.py`` in order."""
    d = directory or notebooks_dir()
    return sorted(p for p in d.glob("[0-9][0-9]_*.py"))


def private_kernel_dir() -> Path:
    """A kernelspec folder whose ``compact`` kernel runs ``sys.executable`` (set as ``JUPYTER_PATH``)."""
    root = artifacts_dir() / "jupyter"
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (compact)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    target = spec / "kernel.json"
    text = json.dumps(kernel, indent=1)
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)
    return root


def py_to_notebook(src: Path):
    """Read a jupytext ``.py`` source into an nbformat notebook with the ``compact`` kernelspec."""
    import jupytext  # local: optional extra [book]

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python (compact)", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def execute(src: Path, out: Path, *, parameters: dict[str, Any] | None = None, timeout: int = 1200,
            cwd: Path | None = None) -> Path:
    """Execute notebook ``src`` (``.py`` or ``.ipynb``) into ``out``; on failure raise, publish nothing."""
    import nbformat  # local: optional extra [book]
    import papermill as pm  # local: optional extra [book]

    src = Path(src)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = py_to_notebook(src) if src.suffix == ".py" else nbformat.read(src, as_version=4)
    failed_dir = artifacts_dir() / "failed-notebooks"
    with tempfile.TemporaryDirectory(prefix="compact-nb-") as tmp:
        tmp_in = Path(tmp) / f"{src.stem}.ipynb"
        tmp_out = Path(tmp) / f"{src.stem}.executed.ipynb"
        nbformat.write(nb, tmp_in)
        env_jp = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(private_kernel_dir()), env_jp]))
        prev_quiet = os.environ.get("COMPACT_QUIET")
        os.environ["COMPACT_QUIET"] = "1"  # kernels inherit it: no progress bars in executed outputs
        try:
            pm.execute_notebook(str(tmp_in), str(tmp_out), parameters=parameters or {}, kernel_name=KERNEL_NAME,
                                cwd=str(cwd or notebooks_dir()), execution_timeout=timeout, progress_bar=False,
                                log_output=False, request_save_on_cell_execute=False)
        except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / f"{src.stem}.failed.ipynb"
            kept.unlink(missing_ok=True)  # never point at an earlier failure's output
            if tmp_out.is_file():
                shutil.copyfile(tmp_out, kept)
            kept_note = f"partial output kept at {kept}, " if kept.is_file() else ""
            raise NotebookError(f"notebook {src.name} failed{_where_failed(exc, nb)}: {_failure_detail(exc)} "
                                f"({kept_note}nothing published)") from None
        finally:
            if env_jp is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = env_jp
            if prev_quiet is None:
                os.environ.pop("COMPACT_QUIET", None)
            else:
                os.environ["COMPACT_QUIET"] = prev_quiet
        _strip_volatile(tmp_out)
        fd, staged = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(tmp_out, staged)
            os.replace(staged, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
    log.info("executed %s -> %s", src.name, out)
    return out


def _first_line(text: str, limit: int = 80) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _failure_detail(exc: BaseException) -> str:
    """``ename: evalue`` of the failing cell (first line), else the exception's first non-empty line."""
    ename = getattr(exc, "ename", None)
    if ename:
        evalue = _first_line(getattr(exc, "evalue", "") or "", limit=200)
        return f"{ename}: {evalue}" if evalue else ename
    return _first_line(str(exc), limit=200) or type(exc).__name__


def _failed_source(exc: BaseException) -> str | None:
    """The source of the cell that failed: papermill's error carries it; a timeout or a dead kernel is raised
    from papermill's cell loop, whose frame still holds the cell."""
    source = getattr(exc, "source", None)
    if isinstance(source, str):
        return source
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "papermill_execute_cells":
            cell = tb.tb_frame.f_locals.get("cell")
            if isinstance(cell, dict) and isinstance(cell.get("source"), str):
                source = cell["source"]
        tb = tb.tb_next
    return source if isinstance(source, str) else None


def _where_failed(exc: BaseException, nb) -> str:
    """`` in cell 7/20 (`first line of its source`)``, numbered in the source notebook (1-based), or ``""``.

    papermill's index counts the injected-parameters cell (and an error banner) that the source notebook does
    not have: the cell is found again by its source.
    """
    source = _failed_source(exc)
    if source is None:
        return ""
    matches = [k for k, cell in enumerate(nb.cells) if cell.get("source") == source]
    if not matches:
        return f" in the injected parameters cell (`{_first_line(source)}`)"
    executed = getattr(exc, "cell_index", None)  # cells only get added: the source index is <= papermill's
    k = max((m for m in matches if m <= executed), default=matches[0]) if isinstance(executed, int) else matches[0]
    return f" in cell {k + 1}/{len(nb.cells)} (`{_first_line(source)}`)"


def _strip_volatile(path: Path) -> None:
    """Drop execution timestamps and durations so re-executions do not churn git diffs, and tag the parameter
    cells for the book: the notebook's defaults removed, papermill's injected values collapsed."""
    import nbformat  # local: optional extra [book]

    nb = nbformat.read(path, as_version=4)
    nb.metadata.get("papermill", {}).pop("start_time", None)
    nb.metadata.get("papermill", {}).pop("end_time", None)
    nb.metadata.get("papermill", {}).pop("duration", None)
    nb.metadata.get("papermill", {}).pop("input_path", None)
    nb.metadata.get("papermill", {}).pop("output_path", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        pm = cell.metadata.get("papermill")
        if isinstance(pm, dict):
            for key in ("start_time", "end_time", "duration", "exception", "status"):
                pm.pop(key, None)
        tags = cell.metadata.setdefault("tags", [])
        # the page shows the values the pipeline ran with (collapsed), not the notebook's own small defaults
        for tag, add in (("parameters", "remove-cell"), ("injected-parameters", "hide-cell")):
            if tag in tags and add not in tags:
                tags.append(add)
        if not tags:
            del cell.metadata["tags"]
    nbformat.write(nb, path)


def check_pairing(directory: Path | None = None) -> list[str]:
    """Problems with the ``.py``/``.ipynb`` pairs: missing partners, outputs committed, contents out of sync."""
    import jupytext  # local: optional extra [book]
    import nbformat  # local: optional extra [book]

    d = directory or notebooks_dir()
    problems = []
    for py in notebook_sources(d):
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.is_file():
            problems.append(f"{py.name}: no paired {ipynb.name}")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            problems.append(f"{ipynb.name}: has outputs (commit it output-free; executed copies live in results/)")
        a = [(c.cell_type, c.source.strip()) for c in jupytext.read(py).cells]
        b = [(c.cell_type, c.source.strip()) for c in nb.cells]
        if a != b:
            problems.append(f"{ipynb.name}: out of sync with {py.name} (run `make sync-notebooks`)")
    for ipynb in sorted(d.glob("[0-9][0-9]_*.ipynb")):
        if not ipynb.with_suffix(".py").is_file():
            problems.append(f"{ipynb.name}: no paired .py source")
    return problems


def solution_check(nb) -> list[str]:
    """Problems with a notebook's exercises and their solutions (empty when there are none).

    The convention: one markdown cell with an ``Exercises`` heading and a numbered list; after it, for each
    exercise N in order, a markdown ``### Exercise N`` heading followed by exactly one code cell tagged
    ``solution`` and ``hide-input`` (the page shows its output and toggles its code). Executing the notebook
    then executes every exercise.
    """
    cells = nb.cells
    sections = [i for i, c in enumerate(cells)
                if c.cell_type == "markdown" and re.search(r"^#+ Exercises\s*$", c.source, flags=re.M)]
    if len(sections) != 1:
        return [f"{len(sections)} 'Exercises' sections (want 1)"]
    n = len(re.findall(r"^\d+\. ", cells[sections[0]].source, flags=re.M))
    problems: list[str] = []
    headings: list[int] = []
    solved: list[int] = []
    for i, c in enumerate(cells[sections[0] + 1:], start=sections[0] + 1):
        if c.cell_type == "markdown":
            headings += [int(m) for m in re.findall(r"^### Exercise (\d+)\s*$", c.source, flags=re.M)]
            continue
        tags = c.metadata.get("tags", [])
        if "solution" not in tags:
            continue
        if not headings:
            problems.append(f"cell {i}: a solution cell before any '### Exercise N' heading")
        elif headings[-1] in solved:
            problems.append(f"cell {i}: a second solution cell under '### Exercise {headings[-1]}'")
        else:
            solved.append(headings[-1])
        if "hide-input" not in tags:
            problems.append(f"cell {i}: a solution cell without the 'hide-input' tag")
    if headings != list(range(1, n + 1)):
        problems.append(f"{n} exercises, but the headings after them are {headings} (want 1..{n} in order)")
    if solved != headings:
        missing = sorted(set(range(1, n + 1)) - set(solved))
        problems.append(f"{n} exercises, but no solution cell for exercise(s) {missing}")
    return problems
