"""World questions exported in GSM8K's schema read back through the GSM8K adapter unchanged."""
from __future__ import annotations

import json
import pytest

from compact.config import load
from compact.data.benchmarks import BenchmarkSpec, load_benchmark
from compact.data.export import gsm8k_lines, gsm8k_row
from compact.errors import ConfigError
from compact.paths import repo_root, resolve
from compact.world import tasks as T
from compact.world.build import WorldConfig

COMMITTED = "data/world_arith_test.gsm8k.jsonl"


def _default_arith_test(limit: int):
    cfg = load(WorldConfig, resolve("configs/world/default.yaml"))
    return T.generate_task("arith", cfg.seed, cfg.tasks.sizes("arith"), cfg.tasks)["test"][:limit]


def test_committed_file_is_the_default_worlds_arith_test():
    """The committed file is what `compact export` writes for the default world today (the world's task
    generator, not its build, decides the questions): a changed world config marks it stale here."""
    lines = (repo_root() / COMMITTED).read_text().splitlines()
    assert lines == gsm8k_lines(_default_arith_test(len(lines)))
    assert len(lines) == 40


def test_export_reads_back_through_the_gsm8k_adapter(tmp_path):
    """Every row: the same question, the gold number after '####', one annotated line per gold step whose
    result is the next line's operand chain; the adapter that reads a user's GSM8K file reads it."""
    exs = _default_arith_test(25)
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join(gsm8k_lines(exs)) + "\n")
    back = load_benchmark(BenchmarkSpec(name="gsm8k", path=str(path)))
    assert [b.question for b in back] == [e.question for e in exs]
    assert [b.answer for b in back] == [e.answer for e in exs]
    for ex, b in zip(exs, back):
        body = b.meta["solution"].splitlines()
        assert len(body) == len(ex.meta["steps"]) + 1 and body[-1] == f"#### {ex.answer}"
        for step, line in zip(ex.meta["steps"], body):
            a, c = step["args"]
            assert line == f"{a} {step['op']} {c} = <<{a}{step['op']}{c}={step['value']}>>{step['value']}"
    assert json.loads(path.read_text().splitlines()[0]).keys() == {"question", "answer"}


def test_a_task_without_a_numeric_answer_is_refused():
    cfg = load(WorldConfig, resolve("configs/world/smoke.yaml"))
    mcq = T.generate_task("mcq", cfg.seed, cfg.tasks.sizes("mcq"), cfg.tasks)["test"][0]
    with pytest.raises(ConfigError, match="no GSM8K form"):
        gsm8k_row(mcq)


def test_cli_bad_limit_is_one_line(tmp_path, capsys):
    from compact.cli import main

    out = tmp_path / "x.jsonl"
    rc = main(["export", "--world", "configs/world/smoke.yaml", "--limit", "-1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "--limit" in err
    assert not out.exists()
