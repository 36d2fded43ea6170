"""Data integrity (issue 10, section 3): nothing lost, nothing silently wrong.

Concurrent runs of one config, foreign output folders, duplicate ids, caches keyed by input contents,
config values checked at load, one validator for every instance reader, torn log lines, stale partial
folders, a swap without a gap, ``pipeline --force`` scoped to its profile, checkpoint checksums; and the
section-4 faults in the same files: corrupt checkpoint files, a read-only or full disk, the line number of
invalid JSON, a pickle-only student.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from compact import provenance as P
from compact.cli import main
from compact.config import load
from compact.errors import ArtifactError, DataError
from compact.trainer.config import TrainConfig
from compact.trainer.run import train
from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return tiny_student(tmp_path_factory.mktemp("student") / "s")


def make_cfg(student: Path, *overrides: str) -> TrainConfig:
    base = [f"model.path={student}", "optim.questions_per_step=4", "optim.micro_batch_questions=4",
            "optim.lr=0.001", "optim.max_steps=2", "data.max_length=64"]
    return load(TrainConfig, None, base + list(overrides))


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line(code: int, err: str, *needles: object) -> str:
    """Exit 2 and exactly one stderr line ``error: ...`` holding every needle (log lines aside)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(lines) == 1, err
    for needle in needles:
        assert str(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def _train_cli(capsys, student: Path, *sets: str, flags: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """`compact train` on an empty config file with the tiny-run settings plus ``sets`` (key=value)."""
    base = [f"model.path={student}", "optim.questions_per_step=4", "optim.micro_batch_questions=4",
            "optim.lr=0.001", "optim.max_steps=2", "data.max_length=64"]
    cfg = Path(os.environ.get("COMPACT_ARTIFACTS", ".")) / "empty-train.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("{}\n")
    args = ["train", "--config", str(cfg)]
    for kv in base + list(sets):
        args += ["--set", kv]
    return _cli(capsys, *args, *flags)


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ------------------------------------------------------------------------------------------------ concurrent train

def test_second_train_of_the_same_run_waits_for_the_first(student, tmp_path, monkeypatch):
    """Without the lock both trained in one work dir and the first to publish deleted it under the other:
    the published run had empty logs and no checkpoints."""
    import yaml

    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = write_instances_jsonl(toy_instances(16), tmp_path / "inst.jsonl")
    sets = {"model": {"path": str(student)}, "data": {"instances": str(data), "max_length": 64},
            "optim": {"questions_per_step": 4, "micro_batch_questions": 4, "lr": 0.001, "max_steps": 4},
            "checkpoint": {"every": 2}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(sets))
    cfg = load(TrainConfig, path)
    from compact.trainer.run import artifact_dirs

    out, _ = artifact_dirs(cfg)
    lock = out.parent / f".{out.name}.lock"
    first = subprocess.Popen([sys.executable, "-m", "compact.trainer", "--config", str(path), "--set",
                              "debug.step_sleep_s=0.4"], env={**os.environ, "COMPACT_QUIET": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (lock.is_file() and lock.read_text()) and first.poll() is None:
            time.sleep(0.05)
        assert lock.is_file() and first.poll() is None, "the first run never took the lock"
        with pytest.raises(ArtifactError, match=rf"is in use by pid {first.pid} "):
            train(cfg, wait=False)
        second = train(cfg)  # waits, then reuses the first's artifact
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr[-2000:]
    assert Path(stdout.strip().splitlines()[-1]) == second == out and P.is_complete(out)
    assert [r["step"] for r in _lines(out / "log.jsonl")] == [1, 2, 3, 4]
    assert len(_lines(out / "alpha.jsonl")) == 4 * 4 * 3
    assert (out / "checkpoints" / "ckpt-00000002").is_dir()


def test_train_no_wait_is_one_line(student, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = write_instances_jsonl(toy_instances(8), tmp_path / "inst.jsonl")
    cfg = make_cfg(student, f"data.instances={data}")
    from compact.trainer.run import artifact_dirs

    out, _ = artifact_dirs(cfg)
    with P.file_lock(out.parent / f".{out.name}.lock"):  # another process's run, as far as flock can tell
        code, _, err = _train_cli(capsys, student, f"data.instances={data}", flags=("--no-wait",))
    one_line(code, err, "is in use by pid", "lock file")
    assert not P.is_complete(out)


# ------------------------------------------------------------------------------------------------ score out=

SCORE_ROWS = [{"id": f"q{i}", "question": f"tom has {i} apples . how many ?", "answer": str(i),
               "answer_type": "number", "teachers": ["a", "b"],
               "rationales": [f"the answer is {i} .", f"wait , the answer is {i + 1} ."]} for i in range(3)]


def _score_args(student: Path, data: Path, *extra: str) -> list[str]:
    return ["score", "--set", f"student={student}", "--set", f"input.path={data}", "--set", "max_length=64", *extra]


def test_score_never_replaces_a_folder_it_did_not_write(student, tmp_path, capsys, monkeypatch):
    """Before: the atomic swap replaced out= wholesale and the user's files were gone."""
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    code, _, err = _cli(capsys, *_score_args(student, data, "--set", f"out={mine}"))
    one_line(code, err, str(mine), "did not write")
    assert (mine / "thesis.tex").read_text() == "precious" and len(list(mine.iterdir())) == 1
    # a project artifact of another kind is not a score either
    run = tmp_path / "a-run"
    run.mkdir()
    P.write_json(run / "manifest.json", {"kind": "run"})
    (run / "model.safetensors").write_text("weights")
    one_line(*_cli(capsys, *_score_args(student, data, "--set", f"out={run}"))[::2], "'run' artifact")
    assert (run / "model.safetensors").read_text() == "weights"
    # an empty folder, or its own earlier score, is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(capsys, *_score_args(student, data, "--set", f"out={empty}"))[0] == 0
    assert P.is_complete(empty)
    assert _cli(capsys, *_score_args(student, data, "--set", f"out={empty}", "--force"))[0] == 0


def test_atomic_dir_refuses_a_foreign_folder_outside_the_artifacts_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    foreign = tmp_path / "user"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(ArtifactError, match="did not write"):
        with P.atomic_dir(foreign, overwrite=True):
            pass
    assert (foreign / "notes.txt").is_file()


# ------------------------------------------------------------------------------------------------ duplicate ids

def _record(i: int, **over) -> dict:
    row = {"id": f"r{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "answer_type": "number",
           "source": "test", "split": "train", "choices": [], "meta": "{}"}
    row.update(over)
    return row


def _generate(tmp_path: Path, capsys, records: Path) -> tuple[int, str, str]:
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(json.dumps({"inputs": {"kind": "records", "records": {"arith-train": str(records)}},
                               "root": str(tmp_path / "store"), "teachers": [{"name": "sim-qwq"}]}))
    return _cli(capsys, "generate", "--config", str(cfg))


def test_generate_rejects_duplicate_ids_naming_both_lines(tmp_path, capsys):
    """Before: accepted, and question r1's first occurrence got the second one's rationales in the store."""
    p = tmp_path / "rec.jsonl"
    p.write_text(json.dumps(_record(0)) + "\n" + json.dumps(_record(1)) + "\n\n"
                 + json.dumps(_record(1, question="another question")) + "\n")
    code, _, err = _generate(tmp_path, capsys, p)
    one_line(code, err, p, "record r1", "field 'id'", "duplicate id", "line 4", "line 2")
    assert not (tmp_path / "store" / "arith-train").exists()


def test_invalid_json_is_reported_at_its_editor_line(tmp_path, capsys, monkeypatch, student):
    """Before: 'invalid JSON' on line 3 was reported as record 2 (a 0-based line index)."""
    p = tmp_path / "rec.jsonl"
    p.write_text(json.dumps(_record(0)) + "\n" + json.dumps(_record(1)) + "\n{broken\n")
    line = one_line(*_generate(tmp_path, capsys, p)[::2], p, "line 3", "invalid JSON")
    assert "record 2" not in line
    inst = tmp_path / "inst.jsonl"
    rows = [json.loads(json.dumps(_instance_row(i))) for i in range(2)]
    inst.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n{broken\n")
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    code, _, err = _train_cli(capsys, student, f"data.instances={inst}")
    line = one_line(code, err, inst, "line 4", "invalid JSON")
    assert "record 3" not in line


# ------------------------------------------------------------------------------------------------ caches keyed by inputs

def test_train_cache_is_keyed_by_the_instances_file_content(student, tmp_path):
    """Before: the run was named by the config alone; an edited instances file returned the old run."""
    data = write_instances_jsonl(toy_instances(8), tmp_path / "inst.jsonl")
    cfg = make_cfg(student, f"data.instances={data}", "optim.max_steps=1")
    first = train(cfg, root=tmp_path)
    assert train(cfg, root=tmp_path) == first  # unchanged input: reused
    write_instances_jsonl(toy_instances(8, seed=5), data)
    second = train(cfg, root=tmp_path)
    assert second != first and P.is_complete(second)
    sha = [P.read_manifest(d)["inputs"]["fingerprint"]["instances"] for d in (first, second)]
    assert sha[0] != sha[1]


def test_score_cache_is_keyed_by_the_input_content(student, tmp_path, capsys, monkeypatch):
    """Before: an edited rationale file was answered with the old scores (default and explicit out=)."""
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    out = tmp_path / "scores"
    assert _cli(capsys, *_score_args(student, data))[0] == 0
    assert _cli(capsys, *_score_args(student, data, "--set", f"out={out}"))[0] == 0
    _jsonl(data, SCORE_ROWS[:2])
    code, stdout, _ = _cli(capsys, *_score_args(student, data))
    assert code == 0 and "4 rationales of 2 questions" in stdout
    assert len(list((tmp_path / "art" / "score").iterdir())) == 2
    code, stdout, _ = _cli(capsys, *_score_args(student, data, "--set", f"out={out}"))
    assert code == 0 and "4 rationales of 2 questions" in stdout
    assert len(_lines(out / "scores.jsonl")) == 4


def test_store_fingerprint_follows_its_files(tmp_path):
    from compact.teachers.store import RationaleStore

    root = tmp_path / "store"
    for name in ("questions", "t1", "t2"):
        d = root / "k-train" / name
        d.mkdir(parents=True)
        (d / "data.arrow").write_bytes(b"rows of " + name.encode())
        P.write_json(d / "manifest.json", {"kind": "x"})
    store = RationaleStore(root)
    before = store.fingerprint(["k-train"])
    assert store.fingerprint(["k-train"], ["t1"]) != before
    (root / "k-train" / "t2" / "data.arrow").write_bytes(b"edited rows")
    assert store.fingerprint(["k-train"]) != before


# ------------------------------------------------------------------------------------------------ config values

@pytest.mark.parametrize("override,key", [
    ("optim.grad_clip=-1", "optim.grad_clip"), ("optim.grad_clip=.nan", "optim.grad_clip"),
    ("optim.lr=.nan", "optim.lr"), ("optim.lr=.inf", "optim.lr"), ("optim.lr=0", "optim.lr"),
    ("optim.betas=[1.5,0.9]", "optim.betas[0]"), ("optim.betas=[0.9,-0.1]", "optim.betas[1]"),
    ("optim.weight_decay=-0.01", "optim.weight_decay"), ("optim.eps=0", "optim.eps"),
    ("data.policy=skip", "data.policy"), ("data.correctness_filter=some", "data.correctness_filter"),
    ("objective.temperature=.nan", "temperature"), ("objective.lambda_consistency=.nan", "objective.lambda_consistency"),
    ("checkpoint.keep=-1", "checkpoint.keep"), ("log.every=-1", "log.every"), ("lora.dropout=.nan", "model.lora"),
    ("debug.step_sleep_s=-1", "debug.step_sleep_s"), ("name=../escape", "name"), ("seed=-3", "seed"),
])
def test_train_config_values_are_checked_at_load(capsys, override, key):
    """Before: grad_clip=-1 flipped the gradient's sign (training climbed the loss); the rest gave tracebacks."""
    extra = ["--set", "model.lora={r: 4, alpha: 8}"] if override.startswith("lora.") else []
    override = override.replace("lora.", "model.lora.") if override.startswith("lora.") else override
    one_line(*_cli(capsys, "train", "--config", "configs/train/smoke.yaml", *extra, "--set", override)[::2], key)


@pytest.mark.parametrize("override,key", [("dtype=foo", "dtype"), ("device=tpu", "device"),
                                          ("low_consensus_quantile=.nan", "low_consensus_quantile"),
                                          ("low_consensus_z=-1", "low_consensus_z"), ("input.policy=x", "input.policy")])
def test_score_config_values_are_checked_at_load(tmp_path, capsys, override, key):
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    one_line(*_cli(capsys, "score", "--set", f"input.path={data}", "--set", "student=x", "--set", override)[::2], key)


def test_grad_clip_must_be_positive_to_mean_clipping():
    assert load(TrainConfig, None, ["optim.grad_clip=0.5"]).optim.grad_clip == 0.5
    assert load(TrainConfig, None, ["optim.grad_clip=null"]).optim.grad_clip is None


# ------------------------------------------------------------------------------------------------ instance validator

def _instance_row(i: int, **over) -> dict:
    row = {"id": f"q{i}", "question": f"tom has {i} apples . how many ?", "answer": str(i), "answer_type": "number",
           "teachers": ["t0", "t1"], "rationales": [f"the answer is {i} .", f"so the answer is {i} ."]}
    row.update(over)
    return row


BAD_INSTANCES = [
    ("blank rationale", {"rationales": ["the answer is 1 .", "   "]}, "rationales[1]", "blank"),
    ("empty rationale", {"rationales": ["", "x"]}, "rationales[0]", "empty"),
    ("empty question", {"question": "  "}, "question", "empty question"),
    ("teacher twice", {"teachers": ["t0", "t0"]}, "teachers", "appears twice"),
    ("unknown answer_type", {"answer_type": "numeric"}, "answer_type", "unknown answer_type"),
    ("gold not a number", {"answer": "seven"}, "answer", "not a valid 'number' answer"),
    ("non-string rationale", {"rationales": ["a", 3]}, "rationales[1]", "expected a string"),
]


@pytest.mark.parametrize("what,over,field,message", BAD_INSTANCES, ids=[b[0] for b in BAD_INSTANCES])
def test_train_and_score_reject_the_same_bad_instance(tmp_path, capsys, monkeypatch, student, what, over, field,
                                                      message):
    """Before: train accepted these rows (score rejected some); now one validator, one line, both commands."""
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    p = _jsonl(tmp_path / "inst.jsonl", [_instance_row(1), _instance_row(2), _instance_row(3, **over)])
    code, _, err = _train_cli(capsys, student, f"data.instances={p}")
    one_line(code, err, p, "line 3", "record q3", f"field '{field}'", message)
    code, _, err = _cli(capsys, *_score_args(student, p))
    one_line(code, err, p, "line 3", "record q3", f"field '{field}'", message)


def test_duplicate_instance_ids_name_both_lines(tmp_path, capsys, monkeypatch, student):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    p = _jsonl(tmp_path / "inst.jsonl", [_instance_row(1), _instance_row(2), _instance_row(1)])
    one_line(*_train_cli(capsys, student, f"data.instances={p}")[::2], p, "record q1", "duplicate id", "line 3",
             "line 1")
    one_line(*_cli(capsys, *_score_args(student, p))[::2], p, "record q1", "duplicate id", "line 3", "line 1")


def test_in_memory_instances_are_validated_too(student, tmp_path):
    import dataclasses

    insts = toy_instances(4)
    insts[2] = dataclasses.replace(insts[2], rationales=[insts[2].rationales[0], " ", insts[2].rationales[2]])
    with pytest.raises(DataError, match=r"record toy-2, field 'rationales\[1\]'"):
        train(make_cfg(student), root=tmp_path, instances=insts)


# ------------------------------------------------------------------------------------------------ torn log lines

def test_logs_are_written_one_line_per_write(tmp_path, monkeypatch):
    writes: list[bytes] = []
    real = os.write

    def spy(fd, data):
        writes.append(bytes(data))
        return real(fd, data)

    monkeypatch.setattr(P.os, "write", spy)
    P.append_jsonl(tmp_path / "a.jsonl", [{"step": 1, "x": "a" * 10_000}, {"step": 2}])
    assert len(writes) == 2 and all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)


def test_resume_drops_a_torn_last_line_with_one_warning(student, tmp_path, caplog):
    """Before: a kill inside the buffered multi-line append tore alpha.jsonl and every resume crashed with
    JSONDecodeError."""
    insts = toy_instances(16)
    cfg = make_cfg(student, "checkpoint.every=1", "optim.max_steps=3", "debug.nan_at_step=3")
    from compact.errors import TrainingError

    with pytest.raises(TrainingError):
        train(cfg, root=tmp_path, instances=insts)
    work = next((tmp_path / "runs").glob(".*.work"))
    for name in ("alpha.jsonl", "log.jsonl"):
        with open(work / name, "ab") as fh:
            fh.write(b'{"step": 3, "id": "toy-1", "alph')
    caplog.set_level("WARNING", logger="compact")
    out = train(make_cfg(student, "checkpoint.every=1", "optim.max_steps=3"), root=tmp_path, instances=insts)
    torn = [r for r in caplog.records if "torn last line" in r.getMessage()]
    assert len(torn) == 2
    assert [r["step"] for r in _lines(out / "log.jsonl")] == [1, 2, 3]
    assert sorted({r["step"] for r in _lines(out / "alpha.jsonl")}) == [1, 2, 3]


def test_read_jsonl_tail_cases(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"step": 1}\n{"step": 2}\n{"st')
    assert P.read_jsonl_tail(p) == ([{"step": 1}, {"step": 2}], 4)
    p.write_bytes(b'{"step": 1}\n{"step": 2}')  # only the newline was lost: kept
    assert P.read_jsonl_tail(p) == ([{"step": 1}, {"step": 2}], 0)
    p.write_bytes(b'{"step": 1}\n{"st\n{"step": 3}\n')  # not the last line: not a kill, an error
    with pytest.raises(DataError, match="line 2"):
        P.read_jsonl_tail(p)


# ------------------------------------------------------------------------------------------------ partial folders, swap

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partials_of_dead_owners_are_removed(tmp_path):
    """Before: a SIGKILL left .partial-* folders forever (only a Python exception cleaned them)."""
    final = tmp_path / "art"
    host = P._HOST
    dead = tmp_path / f".art.partial-{host}-{_dead_pid()}-123-abcd"
    live = tmp_path / f".art.partial-{P._owner()}-live"
    other_host = tmp_path / ".art.partial-00000000-1-1-zz"
    legacy = tmp_path / ".art.partial-q1w2e3"
    other_art = tmp_path / f".other.partial-{host}-{_dead_pid()}-1-x"
    for d in (dead, live, other_host, legacy, other_art):
        d.mkdir()
        (d / "half.bin").write_bytes(b"x")
    old = time.time() - P.STALE_AGE_S - 60
    for d in (dead, live, legacy, other_art):  # left before this process started
        for q in (d / "half.bin", d):
            os.utime(q, (old, old))
    with P.atomic_dir(final) as tmp:
        P.write_json(tmp / P.MANIFEST, {"ok": 1})
    assert not dead.exists() and not legacy.exists()  # dead owner; older than a day without an owner
    assert live.exists() and other_host.exists()  # a live owner; another host's, recent
    assert other_art.exists()  # another artifact's: cleaned by its own next run or by the sweep
    assert P.clean_stale_partials(tmp_path, recursive=True) == [other_art]


def test_interrupted_fallback_swap_is_restored(tmp_path):
    final = tmp_path / "art"
    aside = tmp_path / f".art.old-{P._HOST}-{_dead_pid()}-1-ab"
    aside.mkdir()
    P.write_json(aside / P.MANIFEST, {"ok": 1})
    for q in (aside / P.MANIFEST, aside):
        os.utime(q, (P._STARTED - 10, P._STARTED - 10))
    P.clean_stale_partials(tmp_path)
    assert P.is_complete(final) and not aside.exists()


def test_replacing_an_artifact_leaves_no_moment_without_it(tmp_path, monkeypatch):
    """Before: rename(final -> old) then rename(tmp -> final): in between, there was no artifact."""
    final = tmp_path / "art"
    with P.atomic_dir(final) as tmp:
        P.write_json(tmp / P.MANIFEST, {"v": 0})
    gaps = []
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def checked(src, dst, *a, _real=real, **k):
            out = _real(src, dst, *a, **k)
            if not P.is_complete(final):
                gaps.append((src, dst))
            return out

        monkeypatch.setattr(P.os, name, checked)
    stop, missing = threading.Event(), []

    def watch():
        while not stop.is_set():
            if not (final / P.MANIFEST).is_file():
                missing.append(time.time())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for v in range(1, 30):
            with P.atomic_dir(final, overwrite=True) as tmp:
                (tmp / "payload").write_bytes(os.urandom(1000))
                P.write_json(tmp / P.MANIFEST, {"v": v})
    finally:
        stop.set()
        watcher.join()
    (tmp_path / "probe-a").mkdir()
    (tmp_path / "probe-b").mkdir()
    supported = P._exchange(tmp_path / "probe-a", tmp_path / "probe-b")
    (tmp_path / "probe-a").rmdir()
    (tmp_path / "probe-b").rmdir()
    if not supported:
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the fallback swap has a gap by construction")
    assert not gaps and not missing
    assert json.loads((final / P.MANIFEST).read_text())["v"] == 29
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_pipeline_force_touches_only_its_own_profile(tmp_path, monkeypatch):
    """Before: --force deleted artifacts/eval and artifacts/merges of every profile before retraining."""
    from compact.publish import pipeline as PL
    from compact.publish import report

    art = tmp_path / "art"
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(art))
    others = [art / "eval" / "paper-run-abc", art / "merges" / "paper-merge-s0-abc", art / "runs" / "other-abc"]
    for d in others:
        d.mkdir(parents=True)
        P.write_json(d / P.MANIFEST, {"kind": "x"})
    calls = []

    def fake_map(workers, fn, jobs, what):
        calls.append((what, getattr(fn, "keywords", {})))
        return {k: (str(tmp_path / k) if what == "run" else ([str(tmp_path / "e")], {})) for k in jobs}

    monkeypatch.setattr(PL, "_map", fake_map)
    monkeypatch.setattr(PL.Runner, "world", lambda self: None)
    monkeypatch.setattr(PL.Runner, "base_model", lambda self: tmp_path / "base")
    monkeypatch.setattr(PL.Runner, "store", lambda self: tmp_path / "store")
    monkeypatch.setattr(PL.Runner, "merge_all", lambda self, runs: {m: tmp_path / m for m in self.plan.merges})
    monkeypatch.setattr(report, "write_all", lambda *a, **k: None)
    cfg = PL.load_pipeline("smoke", [f"results={tmp_path / 'results'}", "notebooks=[]"])
    monkeypatch.setattr(PL, "selected_notebooks", lambda cfg: [])
    PL.run_pipeline(cfg, force=True)
    assert all(P.is_complete(d) for d in others)
    assert ("run", {"force": True}) in calls and ("eval", {"force": True}) in calls


# ------------------------------------------------------------------------------------------------ checkpoints

def _tiny_training_state():
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return model, opt, sched


def _save(root: Path) -> Path:
    from compact.trainer.checkpoint import rng_state, save_checkpoint

    model, opt, sched = _tiny_training_state()
    return save_checkpoint(root, step=1, model=model, optimizer=opt, scheduler=sched,
                           position={"epoch": 0, "step_in_epoch": 1, "elapsed_s": 0.0, "tokens": 0},
                           rng_by_rank=[rng_state()], keep=2)


def _load(path: Path):
    from compact.trainer.checkpoint import load_checkpoint

    model, opt, sched = _tiny_training_state()
    return load_checkpoint(path, model=model, optimizer=opt, scheduler=sched, rank=0)


def test_checkpoint_records_checksums_and_loads_when_intact(tmp_path):
    ckpt = _save(tmp_path)
    files = json.loads((ckpt / "manifest.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng-0.pt"}
    assert _load(ckpt)["step"] == 1


def test_flipped_bit_in_a_checkpoint_is_one_line_naming_the_file(tmp_path):
    """Before: a flipped bit in model.safetensors loaded silently into a different run."""
    ckpt = _save(tmp_path)
    f = ckpt / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x01  # a bit of a weight, not of the header: safetensors itself cannot notice
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.safetensors is corrupt: its sha256 differs") as err:
        _load(ckpt)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,damage", [("model.safetensors", "truncate"), ("optimizer.pt", "garbage"),
                                         ("scheduler.pt", "truncate")])
@pytest.mark.parametrize("checksums", [True, False], ids=["manifest", "legacy-manifest"])
def test_truncated_or_garbage_checkpoint_file_is_one_line(tmp_path, name, damage, checksums):
    ckpt = _save(tmp_path)
    if not checksums:  # a checkpoint written before checksums: the loaders' own errors, one line each
        man = json.loads((ckpt / "manifest.json").read_text())
        man.pop("files")
        P.write_json(ckpt / "manifest.json", man)
    f = ckpt / name
    f.write_bytes(f.read_bytes()[:40] if damage == "truncate" else b"\x80\x04garbage, not a pickle" * 3)
    with pytest.raises(ArtifactError, match=rf"checkpoint file {f}") as err:
        _load(ckpt)
    assert "\n" not in str(err.value)


def test_resume_from_a_corrupt_checkpoint_names_it_and_the_way_out(student, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = write_instances_jsonl(toy_instances(16), tmp_path / "inst.jsonl")
    args = [f"data.instances={data}", "optim.max_steps=4", "checkpoint.every=1"]
    code, _, err = _train_cli(capsys, student, *args, "debug.nan_at_step=4")
    assert code == 2 and "non-finite loss" in err
    ckpts = sorted((tmp_path / "art" / "runs").glob(".*.work/checkpoints/ckpt-*"))
    assert [c.name for c in ckpts] == ["ckpt-00000002", "ckpt-00000003"]
    f = ckpts[-1] / "optimizer.pt"
    data_bytes = bytearray(f.read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0x10
    f.write_bytes(bytes(data_bytes))
    code, _, err = _train_cli(capsys, student, *args)
    one_line(code, err, f, "corrupt", f"delete {ckpts[-1]} to resume from {ckpts[0]}")


# ------------------------------------------------------------------------------------------------ full / read-only disk

@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 OSError(errno.EROFS, "Read-only file system"),
                                 RuntimeError("[enforce fail at inline_container.cc:1] . PytorchStreamWriter failed "
                                              "writing file data/0: file write failed")],
                         ids=["ENOSPC", "EROFS", "torch-save"])
def test_full_or_read_only_disk_is_one_line(student, tmp_path, capsys, monkeypatch, exc):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = write_instances_jsonl(toy_instances(8), tmp_path / "inst.jsonl")

    def fail(*a, **k):
        raise exc

    import compact.trainer.checkpoint as C

    monkeypatch.setattr(C.torch, "save", fail)
    code, _, err = _train_cli(capsys, student, f"data.instances={data}", "checkpoint.every=1")
    one_line(code, err, "cannot write the run", str(tmp_path / "art"))


def test_read_only_artifacts_root_is_one_line(student, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    real = P.tempfile.mkdtemp

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", k.get("dir"))

    monkeypatch.setattr(P.tempfile, "mkdtemp", ro)
    code, _, err = _cli(capsys, *_score_args(student, data))
    one_line(code, err, "cannot write the score", "read-only file system")
    monkeypatch.setattr(P.tempfile, "mkdtemp", real)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_really_read_only_folder(student, tmp_path, capsys):  # pragma: no cover - not as root
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = _cli(capsys, *_score_args(student, data, "--set", f"out={ro / 'scores'}"))
        one_line(code, err, "cannot write", "permission denied")
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------------------------------------ pickle-only student

@pytest.fixture(scope="module")
def pickle_student(tmp_path_factory, student) -> Path:
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("pickle") / "s"
    out.mkdir()
    for f in student.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            (out / f.name).write_bytes(f.read_bytes())
    model = AutoModelForCausalLM.from_pretrained(str(student))
    torch.save(model.state_dict(), out / "pytorch_model.bin")  # what older transformers wrote by default
    assert (out / "pytorch_model.bin").is_file() and not (out / "model.safetensors").exists()
    return out


def test_pickle_only_student_is_refused_unless_allowed(pickle_student, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = write_instances_jsonl(toy_instances(4), tmp_path / "inst.jsonl")
    args = [f"data.instances={data}", "optim.max_steps=1"]
    one_line(*_train_cli(capsys, pickle_student, *args)[::2], pickle_student, "pytorch_model.bin",
             "model.allow_pickle=true")
    code, _, err = _train_cli(capsys, pickle_student, *args, "model.allow_pickle=true")
    assert code == 0, err
    # allow_pickle changes no numbers: it does not name the run
    assert load(TrainConfig, None, ["model.allow_pickle=true"]).identity() == load(TrainConfig, None, []).identity()


def test_eval_and_score_say_what_is_missing(pickle_student, tmp_path, capsys, monkeypatch):
    from compact.inputs.model import load_model

    with pytest.raises(ArtifactError, match=r"model\.safetensors is missing; the folder has only pickle weights "
                                            r"\(pytorch_model\.bin\)"):
        load_model(pickle_student)
    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = _jsonl(tmp_path / "rats.jsonl", SCORE_ROWS)
    one_line(*_cli(capsys, *_score_args(pickle_student, data))[::2], "model.safetensors is missing",
             "pytorch_model.bin")


def test_truncated_model_safetensors_is_one_line(student, tmp_path):
    from compact.inputs.model import load_model

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in student.iterdir():
        (broken / f.name).write_bytes(f.read_bytes()[:100] if f.name == "model.safetensors" else f.read_bytes())
    with pytest.raises(ArtifactError, match=f"cannot load the model {broken}") as err:
        load_model(broken)
    assert "\n" not in str(err.value)
