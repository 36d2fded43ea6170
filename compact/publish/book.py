"""Assemble and build the Jupyter Book from the executed notebooks of one results folder.

The book's sources are ``_config.yml`` (repo root), ``book/`` (toc, prose, bibliography) and the
papermill-executed notebooks under ``<results>/notebooks/``. They are staged into one folder (so smoke
and default books never mix and no stray file reaches Sphinx) and built with warnings as errors. The
HTML is built into a temporary folder and swapped into place only on success.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ..errors import CompactError
from ..log import get_logger
from ..paths import book_dir, repo_root
from .registry import read_registry

log = get_logger("book")


class BookError(CompactError):
    """The book could not be built (missing notebook, Sphinx warning)."""


def toc_files(toc: Path | None = None) -> list[str]:
    """Every ``file:`` entry of the table of contents, root first."""
    data = yaml.safe_load((toc or book_dir() / "_toc.yml").read_text())
    files = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data.get("parts", data.get("chapters", [])))
    return files


def stage(results: Path, dest: Path) -> Path:
    """Copy config, prose and executed notebooks into ``dest`` (a fresh folder). A page that ``results``
    does not hold is taken from a profile folder inside it (``results/real/notebooks``: the real profile
    executes "Running on real models")."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(repo_root() / "_config.yml", dest / "_config.yml")
    for item in book_dir().iterdir():
        if item.name.startswith(("_build", ".")):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copyfile(item, target)
    (dest / "execution.md").write_text(execution_page(results))
    executed = results / "notebooks"
    missing = []
    for entry in toc_files(dest / "_toc.yml"):
        if not entry.startswith("notebooks/"):
            if not any((dest / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")):
                missing.append(entry)
            continue
        src = executed / (Path(entry).name + ".ipynb")
        if not src.is_file():  # a page another committed profile executes (results/real: SmolLM2)
            src = next(iter(sorted(results.glob(f"*/notebooks/{Path(entry).name}.ipynb"))), src)
        if not src.is_file():
            missing.append(str(src))
            continue
        (dest / "notebooks").mkdir(exist_ok=True)
        shutil.copyfile(src, dest / "notebooks" / src.name)
    if missing:
        raise BookError("the table of contents names pages that do not exist: " + ", ".join(missing))
    # figures and tables the prose pages embed
    for sub in ("figures", "tables"):
        if (results / sub).is_dir():
            shutil.copytree(results / sub, dest / "results" / sub)
    return dest


_STAGES = ("world", "rationales", "training", "merges", "evaluation", "results", "notebooks")


def execution_page(results: Path) -> str:
    """The execution-statistics page: what each pipeline stage, training run and notebook took when it last ran,
    from the results' registry (``pipeline.json``) and the runs' own summaries."""
    reg = read_registry(results)
    hw = reg.manifest.get("hardware", {})
    lines = ["# Execution statistics", "",
             "What producing this book took, as measured when each part last ran (a stage whose inputs did not "
             "change since is reused, and keeps the time of the run that made it). "
             f"Profile `{reg.profile or '?'}`; machine: {hw.get('cpu_count', '?')} CPU cores, "
             f"{'a GPU' if hw.get('cuda') else 'no GPU'}; training and evaluation ran in "
             f"{reg.config.get('workers', '?')} worker processes.", "",
             "## Pipeline stages", "", "| stage | items run | seconds | minutes |", "|---|---:|---:|---:|"]
    timings = reg.timings_s
    for stage in [*_STAGES, *[k for k in timings if k not in _STAGES]]:
        t = timings.get(stage)
        if t:
            lines.append(f"| {stage} | {t.items} | {t.seconds:.0f} | {t.seconds / 60:.1f} |")
    total = sum(t.seconds for t in timings.values())
    lines += [f"| **sum** | | {total:.0f} | {total / 60:.1f} |", "",
              "## Training runs", "", "Wall time of each run on one worker, its optimizer steps and seconds per step.",
              "", "| run | method | steps | seconds | s / step |", "|---|---|---:|---:|---:|"]
    for rid, meta in reg.runs.items():
        summary = repo_root() / meta.path / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            steps, secs = s.get("steps") or 0, s.get("time_s") or 0.0
            per = f"{secs / steps:.2f}" if steps else ""
            lines.append(f"| {rid} | {meta.method} | {steps} | {secs:.0f} | {per} |")
    lines += ["", "## Notebooks", "", "Executed by papermill in the pipeline (the book build executes nothing).", "",
              "| notebook | seconds |", "|---|---:|"]
    for stem, secs in sorted(reg.notebook_seconds.items()):
        lines.append(f"| {stem} | {secs:.0f} |")
    return "\n".join(lines) + "\n"


def build(results: Path, html_out: Path, *, work: Path | None = None, strict: bool = True) -> Path:
    """Stage and build; on success ``html_out`` holds the site (replaced atomically)."""
    work = work or Path(tempfile.mkdtemp(prefix="compact-book-"))
    src = stage(results, work / "src")
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(src), "--path-output", str(work),
           "--builder", "html"]
    if strict:
        cmd += ["-W", "--keep-going"]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    built = work / "_build" / "html"
    if proc.returncode != 0 or not (built / "index.html").is_file():
        log_path = work / "jupyter-book.log"
        log_path.write_text(proc.stdout + "\n" + proc.stderr)
        warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "WARNING" in ln or "ERROR" in ln]
        head = warnings[0] if warnings else (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BookError(f"jupyter-book build failed ({len(warnings)} warnings/errors; first: {head}); "
                        f"full log: {log_path}")
    html_out.parent.mkdir(parents=True, exist_ok=True)
    old = html_out.with_name(f".{html_out.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if html_out.exists():
        os.replace(html_out, old)
    shutil.copytree(built, html_out)
    shutil.rmtree(old, ignore_errors=True)
    log.info("book built: %s", html_out / "index.html")
    return html_out


def overview_figure(path: Path) -> Path:
    """Draw the method overview (teachers -> scores -> alpha -> weighted objective) as SVG and PNG."""
    import matplotlib  # local: plotting only: matplotlib is imported where a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local: plotting only: matplotlib is imported where a figure is drawn
    from matplotlib.patches import (  # local: plotting only: matplotlib is imported where a figure is drawn
        FancyArrowPatch,
        FancyBboxPatch,
    )

    plt.rcParams["svg.hashsalt"] = "compact"
    fig, ax = plt.subplots(figsize=(13, 4.6))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#333", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9, wrap=True)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color="#333"))

    teachers = ["R1-Distill (reflective)", "Qwen-Instruct (concise)", "Llama-Instruct (slips)", "QwQ (over-thinks)"]
    for i, t in enumerate(teachers):
        y = 3.7 - i * 1.0
        box(0.1, y, 2.2, 0.7, f"teacher {i + 1}\n{t}", "#e8f0fe")
        arrow(2.35, y + 0.35, 3.0, 2.35)
    box(3.0, 1.9, 1.8, 0.9, "question x\n+ K rationales c_k\none student\nforward pass", "#fff4d6")
    scores = [("graph consensus C_k\n(in-degree, last-layer q/k)", 3.4),
              ("MI adaptability M_k\n(gold-answer jumps at\nthinking tokens)", 2.0),
              ("loss difficulty L_k\n(assistant-token CE)", 0.6)]
    for text, y in scores:
        box(5.3, y, 2.2, 0.9, text, "#e6f4ea")
        arrow(4.85, 2.35, 5.3, y + 0.45)
        arrow(7.55, y + 0.45, 8.0, 2.35)
    box(8.0, 1.65, 2.1, 1.4, "z-score per question\n" r"$S_k=\beta_1 z(M)_k+\beta_2 z(C)_k$" "\n"
        r"$-\,\beta_3 z(L)_k$" "\n" r"$\alpha=\mathrm{softmax}(S/\tau)$", "#fce8e6")
    arrow(10.15, 2.35, 10.5, 2.35)
    box(10.5, 1.65, 2.35, 1.4, r"$\mathcal{L}=\sum_k \alpha_k L_k$" "\n" r"$+\,\lambda\sum_{i<j}\alpha_i\alpha_j D_{ij}$"
        "\n(consistency between\nbranches)", "#f3e8fd")
    ax.set_title("COMPACT: compatibility-aware multi-teacher CoT distillation (one training step)", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})
    fig.savefig(path.with_suffix(".png"), dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path.with_suffix(".svg")
