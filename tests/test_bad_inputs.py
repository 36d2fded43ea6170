"""Bad inputs end to end through the CLI: one line naming the file (and record/field), exit 2, no traceback.

Issue 10, section 4: bytes that are not UTF-8 in a config, records, instances, rationale or benchmark file; a
``base:`` cycle through ``../``; a JSON array line; an empty records or benchmark file; CommonsenseQA choices
that are not strings; a failed notebook names its cell.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compact.cli import main
from compact.errors import CompactError
from compact.paths import configs_dir

BAD_BYTES = b"caf\xe9 \xff"  # latin-1, not UTF-8


def _cli(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: object) -> str:
    """Exit 2 and exactly one non-empty stderr line, ``error: ...``, holding every needle."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def _record(i: int = 0, **over) -> dict:
    row = {"id": f"r{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "answer_type": "number",
           "source": "test", "split": "train", "choices": [], "meta": "{}"}
    row.update(over)
    return row


def _jsonl(path: Path, rows: list, extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + extra)
    return path


# ------------------------------------------------------------------------------------------------ configs

def test_config_not_utf8(tmp_path, capsys):
    cfg = tmp_path / "gen.yaml"
    cfg.write_bytes(b"shard_size: 4\n# " + BAD_BYTES + b"\n")
    line = assert_one_line(*_cli(capsys, "generate", "--config", str(cfg)), f"config file {cfg}", "not valid UTF-8",
                           "line 2")
    assert "0xe9" in line


def test_config_base_cycle_through_parent_dirs(tmp_path, capsys):
    """a/x.yaml -> ../b/y.yaml -> ../a/x.yaml: the unnormalised paths never repeated (RecursionError)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("base: ../b/y.yaml\nshard_size: 4\n")
    (tmp_path / "b" / "y.yaml").write_text("base: ../a/x.yaml\n")
    line = assert_one_line(*_cli(capsys, "generate", "--config", str(tmp_path / "a" / "x.yaml")),
                           "loops back", tmp_path / "a" / "x.yaml", tmp_path / "b" / "y.yaml")
    assert ".." not in line


def test_config_base_not_a_file_name(tmp_path, capsys):
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("base: [3]\n")
    assert_one_line(*_cli(capsys, "generate", "--config", str(cfg)), cfg, "'base'")


def test_shipped_base_chain_still_loads():
    from compact.config import read_yaml

    data = read_yaml(configs_dir() / "train" / "smoke.yaml")  # base: compact.yaml
    assert data["name"] == "smoke" and data["method"] == "compact"


# ------------------------------------------------------------------------------------------------ records (generate)

def _generate_records(tmp_path, capsys, records: Path) -> tuple[int, str]:
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(json.dumps({"inputs": {"kind": "records", "records": {"arith-train": str(records)}},
                               "root": str(tmp_path / "store")}))
    return _cli(capsys, "generate", "--config", str(cfg))


def test_records_not_utf8(tmp_path, capsys):
    p = _jsonl(tmp_path / "rec.jsonl", [_record(0), _record(1)], extra=b'{"id": "' + BAD_BYTES + b'"}\n')
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "line 3", "not valid UTF-8")


def test_records_json_array_line(tmp_path, capsys):
    p = _jsonl(tmp_path / "rec.jsonl", [_record(0), [1, 2]])
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "line 2", "expected a JSON object")


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_records_empty_file(tmp_path, capsys, content):
    p = tmp_path / "rec.jsonl"
    p.write_bytes(content)
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "no records")


def test_records_missing_file(tmp_path, capsys):
    p = tmp_path / "nope.jsonl"
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "not found")


@pytest.mark.parametrize("field,value", [("choices", [1, 2]), ("choices", "AB"), ("meta", "[1]"), ("split", 3)])
def test_records_bad_field(tmp_path, capsys, field, value):
    p = _jsonl(tmp_path / "rec.jsonl", [_record(0), _record(1, **{field: value})])
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "record r1", f"field '{field}'")


def test_records_deeply_nested_json(tmp_path, capsys):
    p = tmp_path / "rec.jsonl"
    p.write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    assert_one_line(*_generate_records(tmp_path, capsys, p), p, "line 1")


def test_records_bom_and_crlf_are_fine(tmp_path):
    from compact.data.records import read_jsonl

    p = tmp_path / "rec.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(_record(i)).encode() + b"\r\n" for i in range(2)))
    assert [e.id for e in read_jsonl(p)] == ["r0", "r1"]


# ------------------------------------------------------------------------------------------------ benchmarks (generate)

def _generate_benchmark(tmp_path, capsys, name: str, path: Path) -> tuple[int, str]:
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(json.dumps({"inputs": {"kind": "benchmark", "benchmarks": [{"name": name, "path": str(path),
                                                                                "split": "test"}]},
                               "root": str(tmp_path / "store")}))
    return _cli(capsys, "generate", "--config", str(cfg))


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_benchmark_not_utf8(tmp_path, capsys, suffix):
    p = tmp_path / f"gsm8k{suffix}"
    good = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"}).encode()
    body = good + b"\n" + good.replace(b"1+1?", BAD_BYTES) + b"\n"
    p.write_bytes(body if suffix == ".jsonl" else b"[" + body.replace(b"\n", b",\n", 1) + b"]")
    assert_one_line(*_generate_benchmark(tmp_path, capsys, "gsm8k", p), p, "not valid UTF-8", "line 2")


@pytest.mark.parametrize("name,content", [("gsm8k.jsonl", b""), ("gsm8k.json", b"  \n"), ("gsm8k.json", b"[]"),
                                          ("gsm8k2.json", b'{"data": []}')])
def test_benchmark_empty_file(tmp_path, capsys, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    assert_one_line(*_generate_benchmark(tmp_path, capsys, "gsm8k", p), p, "no records")


@pytest.mark.parametrize("labels,texts,field", [
    (["A", "B"], ["yes", 3], "choices.text[1]"),
    (["A", "B"], ["yes", None], "choices.text[1]"),
    (["A", "B"], ["yes", ""], "choices.text[1]"),
    ([1, "B"], ["yes", "no"], "choices.label[0]"),
    (["A", "A"], ["yes", "no"], "choices.label"),
])
def test_commonsense_qa_choices_not_strings(tmp_path, capsys, labels, texts, field):
    p = _jsonl(tmp_path / "csqa.jsonl", [{"id": "q1", "question": "Which?", "answerKey": "B",
                                          "choices": {"label": labels, "text": texts}}])
    assert_one_line(*_generate_benchmark(tmp_path, capsys, "commonsense_qa", p), p, "record q1", f"field '{field}'")


# ------------------------------------------------------------------------------------------------ rationale file (score)

def _score(tmp_path, capsys, path: Path) -> tuple[int, str]:
    return _cli(capsys, "score", "--set", f"input.path={path}", "--set", "student=unused",
                "--set", f"out={tmp_path / 'score-out'}")


def test_rationale_file_not_utf8(tmp_path, capsys):
    row = {"id": "q1", "question": "Q?", "answer": "1", "rationales": ["r"]}
    p = _jsonl(tmp_path / "rats.jsonl", [row], extra=json.dumps(row).encode().replace(b"Q?", BAD_BYTES) + b"\n")
    assert_one_line(*_score(tmp_path, capsys, p), p, "not valid UTF-8", "line 2")


def test_rationale_file_non_string_rationale(tmp_path, capsys):
    p = _jsonl(tmp_path / "rats.jsonl", [{"id": "q1", "question": "Q?", "answer": "1", "rationales": ["a", 7]}])
    assert_one_line(*_score(tmp_path, capsys, p), p, "record q1", "field 'rationales[1]'")


# ------------------------------------------------------------------------------------------------ instances (train)

def _train_instances(tmp_path, capsys, monkeypatch, path: Path) -> tuple[int, str]:
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "artifacts"))
    return _cli(capsys, "train", "--config", str(configs_dir() / "train" / "smoke.yaml"),
                "--set", f"data.instances={path}", "--set", "data.generate=null", "--set", "data.world=null",
                "--set", "model.path=unused")


def _instance(i: int = 0) -> dict:
    return {"id": f"q{i}", "question": "Q?", "answer": "1", "rationales": ["r"], "teachers": ["t"]}


def test_instances_not_utf8(tmp_path, capsys, monkeypatch):
    p = _jsonl(tmp_path / "inst.jsonl", [_instance(0)],
               extra=json.dumps(_instance(1)).encode().replace(b"Q?", BAD_BYTES) + b"\n")
    assert_one_line(*_train_instances(tmp_path, capsys, monkeypatch, p), p, "line 2", "not valid UTF-8")


def test_instances_json_array_line(tmp_path, capsys, monkeypatch):
    p = _jsonl(tmp_path / "inst.jsonl", [_instance(0), ["q1", "Q?"]])
    assert_one_line(*_train_instances(tmp_path, capsys, monkeypatch, p), p, "line 2", "expected a JSON object")


def test_instances_empty_file(tmp_path, capsys, monkeypatch):
    p = tmp_path / "inst.jsonl"
    p.write_bytes(b"")
    assert_one_line(*_train_instances(tmp_path, capsys, monkeypatch, p), p, "no records")


# ------------------------------------------------------------------------------------------------ notebooks

def _notebook(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "99_broken.py"
    src.write_text("# %% [markdown]\n# A broken notebook\n\n# %% tags=[\"parameters\"]\nx = 1\n\n" + body)
    return src


def test_failed_notebook_names_its_cell(tmp_path, monkeypatch):
    """The cell is numbered in the source notebook (papermill's index counts its injected-parameters cell);
    of two cells with the same source, the one that failed."""
    from compact.publish.notebooks import NotebookError, execute

    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "artifacts"))
    same = "# %%\nratio = 1 / x\nprint(ratio)\n\n"
    src = _notebook(tmp_path, same + "# %%\nx = 0\n\n" + same)
    with pytest.raises(NotebookError) as info:
        execute(src, tmp_path / "out" / "99_broken.ipynb", parameters={"x": 2}, cwd=tmp_path, timeout=120)
    msg = str(info.value)
    assert isinstance(info.value, CompactError) and "\n" not in msg, msg
    assert "99_broken.py" in msg and "cell 5/5 (`ratio = 1 / x`)" in msg, msg
    assert "ZeroDivisionError: division by zero" in msg and "partial output kept at" in msg, msg
    assert not (tmp_path / "out" / "99_broken.ipynb").exists()


def test_timed_out_notebook_names_its_cell(tmp_path, monkeypatch):
    """A timeout is not a cell error (nbclient raises from papermill's loop): the cell is still named."""
    from compact.publish.notebooks import NotebookError, execute

    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "artifacts"))
    src = _notebook(tmp_path, "# %%\nimport time\n\n# %%\ntime.sleep(60)\n")
    with pytest.raises(NotebookError) as info:
        execute(src, tmp_path / "out" / "99_broken.ipynb", cwd=tmp_path, timeout=1)
    msg = str(info.value)
    assert "\n" not in msg and "cell 4/4 (`time.sleep(60)`)" in msg and "timed out" in msg, msg
    assert "partial output kept" not in msg or Path(msg.split("partial output kept at ")[1].split(",")[0]).is_file()


def test_store_shard_not_utf8(tmp_path):
    """A rationale-store shard with non-UTF-8 bytes is one DataError naming the file and line."""
    from compact.errors import DataError
    from compact.teachers.store import _read_shard

    shard = tmp_path / "shard-00000.jsonl"
    shard.write_bytes(b'{"id": "b\xff"}\n')
    with pytest.raises(DataError, match=r"shard-00000\.jsonl.*line 1"):
        list(_read_shard(shard))


def test_cli_version_and_help_paths(capsys):
    """`compact --version` answers; help texts point at the folders runs really live in."""
    from compact import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("compact ")
    for sub in ("eval", "analyze"):
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
        text = capsys.readouterr().out
        assert "artifacts/train" not in text
