import json

import pytest

from compact.errors import DataError
from compact.publish.results import read_index, read_table, save_figure, write_table


def test_write_table_formats_and_index(tmp_path):
    rows = [{"method": "compact", "acc": 0.8125, "n": 16}, {"method": "avg|x", "acc": float("nan"), "n": 16}]
    paths = write_table("main/acc", rows, {"config_hash": "abc123"}, root=tmp_path, digits=2)
    assert paths["csv"].read_text() == "method,acc,n\ncompact,0.8125,16\navg|x,,16\n"
    md = paths["md"].read_text().splitlines()
    assert md[0] == "| method | acc | n |"
    assert md[2] == "| compact | 0.81 | 16 |"
    assert md[3] == "| avg\\|x |  | 16 |"
    data = json.loads(paths["json"].read_text())
    assert data["rows"][1]["acc"] is None
    assert data["provenance"]["config_hash"] == "abc123"
    entry = read_index(tmp_path)["artifacts"]["tables/main/acc"]
    assert entry["provenance"]["config_hash"] == "abc123"
    assert {"git", "packages", "hardware"} <= set(entry["provenance"])
    assert entry["files"]["csv"] == "tables/main/acc.csv"
    assert read_table("main/acc", root=tmp_path)[0]["acc"] == 0.8125
    # a rewrite leaves the index byte-identical and no temp files behind
    before = (tmp_path / "manifest.json").read_bytes()
    write_table("main/acc", rows, {"config_hash": "abc123"}, root=tmp_path, digits=2)
    assert (tmp_path / "manifest.json").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_write_table_accepts_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    paths = write_table("df", df, root=tmp_path)
    assert paths["csv"].read_text() == "a,b\n1,x\n2,y\n"


def test_bad_names_rejected(tmp_path):
    with pytest.raises(DataError):
        write_table("../escape", [{"a": 1}], root=tmp_path)


def test_figures_are_deterministic(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def make():
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.scatter([0, 1, 2], [2, 1, 3], label="pts")
        ax.legend()
        return fig

    fig = make()
    p1 = save_figure(fig, "scatter", {"config_hash": "h"}, root=tmp_path)
    a = {k: v.read_bytes() for k, v in p1.items()}
    plt.close(fig)
    fig = make()
    p2 = save_figure(fig, "scatter", {"config_hash": "h"}, root=tmp_path)
    plt.close(fig)
    b = {k: v.read_bytes() for k, v in p2.items()}
    assert a == b
    assert a["png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in a["svg"] and b"<dc:date>" not in a["svg"]
    assert "figures/scatter" in read_index(tmp_path)["artifacts"]


def test_execution_statistics_page(tmp_path, monkeypatch):
    """The generated execution page lists every timed stage, each run's time per step and each notebook."""
    import json

    from compact.publish import book

    run = tmp_path / "runs" / "compact-s0-abc"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 800, "time_s": 1600.0}))
    monkeypatch.setattr(book, "repo_root", lambda: tmp_path)
    reg = {"profile": "default", "config": {"workers": 2},
           "manifest": {"hardware": {"cpu_count": 2, "cuda": False}},
           "timings_s": {"training": {"seconds": 7200.0, "items": 22}, "evaluation": {"seconds": 600.0, "items": 25}},
           "runs": {"compact-s0": {"name": "compact", "seed": 0, "group": "main", "label": "COMPACT",
                                   "method": "compact", "path": "runs/compact-s0-abc"}},
           "notebook_seconds": {"08_main_table": 12.4}}
    (tmp_path / "pipeline.json").write_text(json.dumps(reg))
    page = book.execution_page(tmp_path)
    assert page.startswith("# Execution statistics")
    assert "| training | 22 | 7200 | 120.0 |" in page and "| **sum** | | 7800 | 130.0 |" in page
    assert "| compact-s0 | compact | 800 | 1600 | 2.00 |" in page
    assert "| 08_main_table | 12 |" in page


def test_book_takes_a_page_from_the_profile_that_executes_it(tmp_path, monkeypatch):
    """A toc page the results folder lacks comes from a profile folder inside it (results/real holds the
    SmolLM2 chapter); a page no profile executed is named in the error."""
    import nbformat

    from compact.errors import CompactError
    from compact.publish import book

    results = tmp_path / "results"
    (results / "notebooks").mkdir(parents=True)
    (results / "real" / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(book, "execution_page", lambda r: "# Execution statistics\n")
    pages = [p.split("/")[1] for p in book.toc_files() if p.startswith("notebooks/")]
    for name in pages:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")])
        where = "real/notebooks" if name == "12_real_models" else "notebooks"
        nbformat.write(nb, results / where / f"{name}.ipynb")
    dest = book.stage(results, tmp_path / "src")
    assert "# 12_real_models" in (dest / "notebooks" / "12_real_models.ipynb").read_text()
    (results / "real" / "notebooks" / "12_real_models.ipynb").unlink()
    with pytest.raises(CompactError, match="12_real_models"):
        book.stage(results, tmp_path / "src")


def test_registry_round_trips_and_refuses_a_broken_schema(tmp_path):
    """The results registry is typed: the committed one reads, writes back identically, and a record with a
    missing field is a one-line error naming it (not a KeyError inside a report)."""
    import json

    from compact.errors import DataError
    from compact.paths import results_dir
    from compact.publish.registry import Registry, read_registry

    reg = read_registry(results_dir())
    assert reg.published and reg.runs and set(reg.models()) >= {"base", *reg.runs, *reg.merges}
    reg.write(tmp_path)
    assert read_registry(tmp_path) == reg
    assert json.loads((tmp_path / "pipeline.json").read_text()) == reg.to_dict()
    assert read_registry(tmp_path / "nowhere") == Registry()  # nothing published yet
    data = reg.to_dict()
    del next(iter(data["runs"].values()))["path"]
    (tmp_path / "pipeline.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"pipeline\.json.*runs\..*path"):
        read_registry(tmp_path)
