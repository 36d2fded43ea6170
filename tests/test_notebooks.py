"""The mechanism notebooks: paired and output-free, book-ready structure, and one executed end to end."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from compact.paths import notebooks_dir
from compact.publish.notebooks import check_pairing, execute, notebook_sources, solution_check

MINE = ["01_world", "02_teachers", "03_consensus", "04_adaptability", "05_difficulty", "06_fusion_objective",
        "07_training", "11_paper_vs_code", "12_real_models"]
PARAMETERS = ("profile", "results", "world_config", "generate_config")


def _present() -> list[Path]:
    return [p for p in notebook_sources() if p.stem in MINE]


def test_pairing_is_clean():
    assert check_pairing() == []


def test_pairing_check_catches_outputs_and_drift(tmp_path):
    """check_pairing must fail on an ipynb with outputs or out of sync (so the test above can fail)."""
    import jupytext
    import nbformat

    src = notebooks_dir() / "01_world.py"
    (tmp_path / "01_world.py").write_text(src.read_text())
    nb = jupytext.read(src)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x")]
    nbformat.write(nb, tmp_path / "01_world.ipynb")
    assert any("has outputs" in p for p in check_pairing(tmp_path))
    (tmp_path / "01_world.py").write_text(src.read_text() + "\n# %%\nprint('drift')\n")
    assert any("out of sync" in p for p in check_pairing(tmp_path))


@pytest.mark.parametrize("name", MINE)
def test_notebook_structure(name):
    """Title cell, tagged parameters cell with repo-relative defaults, equations, exercises, consecutive headings."""
    import jupytext

    path = notebooks_dir() / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{name} not written yet")
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and re.fullmatch(r"# [^\n]+", first.source.strip()), "first cell: '# Title'"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    ns: dict = {}
    exec(params[0].source, ns)  # literal assignments only
    for key in PARAMETERS:
        assert key in ns, f"parameters cell lacks {key}"
        if key != "profile":
            assert not Path(ns[key]).is_absolute(), f"{key} must be repo-relative (it is published)"
    assert ns["profile"] == "smoke", "smoke-sized defaults"
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "$$" in md, "the equations, in LaTeX"
    assert "## Exercises" in md
    levels = [len(m.group(1)) for m in re.finditer(r"^(#+) ", md, flags=re.M)]
    assert levels.count(1) == 1 and levels[0] == 1, "one H1, first"
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), f"heading levels skip: {levels}"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "artifacts/runs" not in code, "notebooks never read trained runs directly"
    assert "/work/" not in code and "os.getcwd" not in code, "paths resolve through compact.paths"


@pytest.mark.slow
def test_world_notebook_executes(tmp_path, monkeypatch):
    """01_world runs end to end through the papermill runner with smoke parameters."""
    import nbformat

    out = execute(notebooks_dir() / "01_world.py", tmp_path / "01_world.ipynb",
                  parameters={"profile": "smoke", "world_config": "configs/world/smoke.yaml"}, timeout=600)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Pretraining took the loss from" in text  # the 'what we saw' cell ran and read real numbers
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the notebook shows at least one figure"


@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_every_exercise_has_a_solution_cell(path):
    """Each numbered exercise has its own '### Exercise N' heading and one code cell tagged 'solution' (toggled
    on the page), in order, so that every exercise is executed whenever the notebook is."""
    import jupytext

    assert solution_check(jupytext.read(path)) == []


def test_solution_check_catches_a_missing_or_misplaced_solution():
    """The check above can fail: an exercise without a solution, a solution under the wrong heading."""
    import jupytext

    nb = jupytext.read(notebooks_dir() / "05_difficulty.py")
    sols = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])]
    dropped = nb.copy()
    dropped.cells = [c for i, c in enumerate(nb.cells) if i != sols[-1]]
    assert any("solution" in p for p in solution_check(dropped))
    extra = nb.copy()
    extra.cells = list(nb.cells)
    ex = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    extra.cells[ex] = nb.cells[ex].copy()
    extra.cells[ex].source = nb.cells[ex].source + "\n5. A fifth exercise."
    assert any("5 exercises" in p for p in solution_check(extra))
