"""`compact generate`: help, configs, a full run on record files, idempotence, bad input."""
import json
import subprocess
import sys

import pytest
from test_store import Scripted, tree_digest
from test_teachers import arith_examples

from compact.cli import main
from compact.data.records import write_jsonl
from compact.errors import DataError
from compact.paths import configs_dir
from compact.teachers import generate as G
from compact.teachers.store import RationaleStore


def _config(tmp_path, **extra):
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    write_jsonl(arith_examples(40, prefix="t"), train)
    write_jsonl(arith_examples(10, seed=1, prefix="d"), dev)
    cfg = {"inputs": {"kind": "records", "records": {"arith-train": str(train), "arith-dev": str(dev)}},
           "shard_size": 16, "root": str(tmp_path / "store")}
    cfg.update(extra)
    path = tmp_path / "gen.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def test_help_documents_command():
    out = subprocess.run([sys.executable, "-m", "compact.cli", "generate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for text in ("--config", "--set", "configs/generate/world.yaml", "resumes", "disagree", "simulated | hf | vllm"):
        assert text in out.stdout


@pytest.mark.parametrize("name", ["world.yaml", "smoke.yaml", "paper_gsm8k.yaml"])
def test_shipped_configs_load(name):
    cfg = G.load_config(configs_dir() / "generate" / name)
    assert cfg.teachers and cfg.shard_size >= 1
    if name != "paper_gsm8k.yaml":
        assert [t.name for t in cfg.teachers] == ["sim-r1-distill", "sim-qwen-instruct", "sim-llama-instruct",
                                                  "sim-qwq"]
        assert cfg.inputs.kind == "world" and cfg.inputs.splits == ["train", "dev"]
    else:
        assert {t.backend for t in cfg.teachers} == {"vllm"} and cfg.inputs.benchmarks[0].name == "gsm8k"


def test_generate_fills_store_and_is_idempotent(tmp_path, capsys, monkeypatch):
    path = _config(tmp_path)
    assert main(["generate", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "store"
    assert f"store: {root}" in out
    for name in ("sim-r1-distill", "sim-qwen-instruct", "sim-llama-instruct", "sim-qwq"):
        assert name in out
    store = RationaleStore(root)
    assert store.keys() == ["arith-dev", "arith-train"]
    assert store.teachers("arith-train") == ["sim-r1-distill", "sim-qwen-instruct", "sim-llama-instruct", "sim-qwq"]
    assert len(store.load("arith-train", "sim-qwq")) == 40
    before = tree_digest(root)

    def no_teacher(spec):
        raise AssertionError("a complete store must not instantiate teachers")

    monkeypatch.setattr(G, "make_teacher", no_teacher)
    assert main(["generate", "--config", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert tree_digest(root) == before
    rows = [r for r in summary["summary"] if r["key"] == "arith-train"]
    assert len(rows) == 4 and all(0 < r["accuracy"] <= 1 and r["parse_rate"] == 1.0 for r in rows)
    assert len({r["disagreement"] for r in rows}) == 1


def test_overrides_and_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    path = _config(tmp_path, root="")
    cfg = G.load_config(path, ["teachers=[{name: sim-qwen-instruct}]", "inputs.limit=5"])
    root = G.generate_store(cfg)
    assert root.parent == tmp_path / "art" / "rationales"
    assert len(RationaleStore(root).load("arith-train", "sim-qwen-instruct")) == 5
    assert G.store_root(cfg) == root
    write_jsonl(arith_examples(40, seed=5, prefix="t"), tmp_path / "train.jsonl")  # edited inputs: new store
    assert G.store_root(cfg) != root


def test_benchmark_inputs_with_injected_teacher(tmp_path):
    p = tmp_path / "gsm8k.jsonl"
    p.write_text(json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"}) + "\n")
    cfg = G.GenerateConfig(inputs=G.InputsConfig(kind="benchmark", benchmarks=[
        G.BenchmarkSpec(name="gsm8k", path=str(p), split="test")]),
        teachers=[G.TeacherSpec(name="fake", backend="hf", model="unused")], root=str(tmp_path / "s"))
    root = G.generate_store(cfg, teachers={"fake": Scripted("fake", lambda e: "1+1=2\nThe answer is 2.")})
    row = RationaleStore(root).load("gsm8k-test", "fake")[0]
    assert row["final_correct"] and row["extracted"] == "2"
    # simulated teachers cannot answer real questions (no gold computation): a clear error
    cfg.teachers = [G.TeacherSpec(name="sim-qwq")]
    cfg.root = str(tmp_path / "s2")
    with pytest.raises(DataError, match="record gsm8k-0, field 'meta'"):
        G.generate_store(cfg)


class Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def run_cli(capsys):
    """`compact generate ARGS` in process (the CLI's error handling included), returning code and stderr."""

    def run(args):
        capsys.readouterr()
        code = main(["generate", *args])
        return Result(code, capsys.readouterr().err)

    return run


def test_bad_input_exits_with_one_line(tmp_path, run_cli):
    path = _config(tmp_path)
    out = run_cli(["--config", str(path), "--set", "teachers=[{name: sim-gpt}]"])
    assert out.returncode == 2 and "unknown teacher 'sim-gpt'" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(["--config", str(path), "--set", "teachers=[{name: x, backend: openai}]"])
    assert out.returncode == 2 and "teachers[0].backend" in out.stderr
    out = run_cli(["--config", str(path), "--set", "teachers=[{name: x, backend: hf}]"])
    assert out.returncode == 2 and "needs 'model'" in out.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "r1", "question": "q", "answer": "1", "answer_type": "number"}) + "\n")
    out = run_cli(["--config", str(path), "--set", f"inputs.records={{arith-train: {bad}}}"])
    assert out.returncode == 2 and f"{bad}, record r1, field 'source'" in out.stderr


def test_store_from_other_config_is_an_error(tmp_path, run_cli):
    path = _config(tmp_path)
    assert run_cli(["--config", str(path), "--set", "teachers=[{name: sim-qwq}]"]).returncode == 0
    root = tmp_path / "store"
    before = tree_digest(root)
    out = run_cli(["--config", str(path), "--set", "teachers=[{name: sim-qwq, sampling: {seed: 7}}]"])
    assert out.returncode == 2
    assert f"{root / 'store.json'}: field 'config_hash' differs" in out.stderr and "Traceback" not in out.stderr
    assert tree_digest(root) == before
