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
