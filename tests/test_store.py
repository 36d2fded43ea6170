"""Rationale store: provenance, idempotence, resumption (simulated crash and a real SIGKILL), bad input, view."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_teachers import arith_examples

from compact.errors import ArtifactError, ConfigError, DataError
from compact.teachers.base import Generation, SamplingParams
from compact.teachers.simulated import SimulatedTeacher
from compact.teachers.store import ROW_COLUMNS, RationaleStore
from compact.teachers.view import (
    build_instances,
    disagreement,
    instances_from_dataset,
    instances_to_dataset,
    summarize,
)

P = SamplingParams()
KEY = "arith-train"


class Counting:
    """Wraps a teacher: counts generate() calls and can fail after N of them (a simulated crash)."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.name, self.calls, self.fail_after = inner, inner.name, 0, fail_after

    def provenance(self):
        return self.inner.provenance()

    def generate(self, prompts, params):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return self.inner.generate(prompts, params)


class Scripted:
    """A teacher whose rationale for each question is given by a function (id -> text)."""

    backend = "scripted"

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def provenance(self):
        return {"teacher": self.name, "backend": "scripted", "model": "none"}

    def generate(self, prompts, params):
        return [[Generation(self.fn(ex)) for _ in range(params.n)] for ex in prompts]


def tree_digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_fill_rows_provenance_manifest(tmp_path):
    exs = arith_examples(30)
    store = RationaleStore(tmp_path / "s")
    store.put_questions(KEY, exs)
    d = store.fill(KEY, SimulatedTeacher("sim-r1-distill"), exs, SamplingParams(n=2, seed=3), shard_size=7)
    ds = store.load(KEY, "sim-r1-distill")
    assert set(ROW_COLUMNS) <= set(ds.column_names) and len(ds) == 60
    assert [(r["id"], r["sample"]) for r in ds] == [(e.id, j) for e in exs for j in range(2)]
    row = ds[0]
    prov = json.loads(row["provenance"])
    assert prov["teacher"] == "sim-r1-distill" and prov["seed"] == 3 and prov["sampling"]["n"] == 2
    assert prov["revision"] and len(prov["prompt_template"]) == 12 and prov["backend"] == "simulated"
    assert row["parse_ok"] and row["extracted"] is not None and row["steps_correct"] is not None
    man = json.loads((d / "manifest.json").read_text())
    assert man["kind"] == "rationales" and man["stats"]["n_rows"] == 60 and "git" in man
    assert not store.shards_dir(KEY, "sim-r1-distill").exists()  # work files removed once assembled
    assert [e.id for e in store.questions(KEY)] == [e.id for e in exs]


def test_idempotent(tmp_path):
    exs = arith_examples(20)
    store = RationaleStore(tmp_path / "s")
    t = Counting(SimulatedTeacher("sim-qwq"))
    store.fill(KEY, t, exs, P, shard_size=5)
    assert t.calls == 4
    before = tree_digest(store.teacher_dir(KEY, "sim-qwq"))
    store.fill(KEY, t, exs, P, shard_size=5)
    assert t.calls == 4 and tree_digest(store.teacher_dir(KEY, "sim-qwq")) == before


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    exs = arith_examples(23)
    ref = RationaleStore(tmp_path / "ref")
    ref.fill(KEY, SimulatedTeacher("sim-llama-instruct"), exs, P, shard_size=5)
    store = RationaleStore(tmp_path / "s")
    crashing = Counting(SimulatedTeacher("sim-llama-instruct"), fail_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.fill(KEY, crashing, exs, P, shard_size=5)
    assert not store.has(KEY, "sim-llama-instruct")
    assert len(list(store.shards_dir(KEY, "sim-llama-instruct").glob("shard-*.jsonl"))) == 2
    resumed = Counting(SimulatedTeacher("sim-llama-instruct"))
    store.fill(KEY, resumed, exs, P, shard_size=5)
    assert resumed.calls == 3  # only the 3 missing shards were generated
    assert store.load(KEY, "sim-llama-instruct").to_list() == ref.load(KEY, "sim-llama-instruct").to_list()


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_teachers import arith_examples
    from compact.teachers.base import SamplingParams
    from compact.teachers.simulated import SimulatedTeacher
    from compact.teachers.store import RationaleStore
    store = RationaleStore({root!r})
    store.fill("arith-train", SimulatedTeacher("sim-qwq", delay_s=0.05), arith_examples(200), SamplingParams(),
               shard_size=4)
""")


def test_resume_after_sigkill(tmp_path):
    """Kill a generating process with SIGKILL mid-run; a rerun completes with no gaps or duplicates."""
    root = tmp_path / "s"
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, COMPACT_QUIET="1"))
    shards = root / "arith-train" / ".sim-qwq.shards"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(shards.glob("shard-*.jsonl"))) < 3:
        assert proc.poll() is None, "generation ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(shards.glob("shard-*.jsonl")))
    assert 3 <= done < 50
    store = RationaleStore(root)
    assert not store.has("arith-train", "sim-qwq")
    exs = arith_examples(200)
    t = Counting(SimulatedTeacher("sim-qwq"))  # no delay: delay is not part of the output's identity
    store.fill("arith-train", t, exs, P, shard_size=4)
    assert t.calls == 50 - done
    rows = store.load("arith-train", "sim-qwq").to_list()
    assert [r["id"] for r in rows] == [e.id for e in exs]  # no duplicates, no gaps, in order
    ref = RationaleStore(tmp_path / "ref")
    ref.fill("arith-train", SimulatedTeacher("sim-qwq"), exs, P, shard_size=4)
    assert rows == ref.load("arith-train", "sim-qwq").to_list()
    assert not list(shards.parent.glob(".*.tmp"))


def test_different_config_is_an_error_and_nothing_is_overwritten(tmp_path):
    exs = arith_examples(12)
    store = RationaleStore(tmp_path / "s")
    # partial shards from seed 0, then a run with seed 1
    with pytest.raises(RuntimeError):
        store.fill(KEY, Counting(SimulatedTeacher("sim-qwq"), fail_after=1), exs, P, shard_size=4)
    work = store.shards_dir(KEY, "sim-qwq")
    before = tree_digest(work)
    with pytest.raises(ArtifactError) as err:
        store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, SamplingParams(seed=1), shard_size=4)
    assert str(work / "job.json") in str(err.value) and "provenance.sampling.seed" in str(err.value)
    assert tree_digest(work) == before
    # a complete dataset from seed 0, then seed 1
    store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, P, shard_size=4)
    final = store.teacher_dir(KEY, "sim-qwq")
    before = tree_digest(final)
    with pytest.raises(ArtifactError) as err:
        store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, SamplingParams(seed=1), shard_size=4)
    assert str(final / "manifest.json") in str(err.value) and "field 'provenance.sampling.seed'" in str(err.value)
    assert tree_digest(final) == before
    # other questions under the same key
    with pytest.raises(ArtifactError, match="field 'inputs_fingerprint'"):
        store.put_questions(KEY, exs)
        store.put_questions(KEY, arith_examples(12, seed=9))


def test_tampered_shard_names_file_record_field(tmp_path):
    exs = arith_examples(8)
    store = RationaleStore(tmp_path / "s")
    with pytest.raises(RuntimeError):
        store.fill(KEY, Counting(SimulatedTeacher("sim-qwq"), fail_after=1), exs, P, shard_size=4)
    shard = store.shards_dir(KEY, "sim-qwq") / "shard-00000.jsonl"
    lines = shard.read_text().splitlines()
    row = json.loads(lines[1])
    row["rationale"] = 5
    shard.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n")
    with pytest.raises(DataError) as err:
        store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, P, shard_size=4)
    assert f"{shard}, record {exs[1].id}, field 'rationale'" in str(err.value)
    row["rationale"] = "text"
    row["provenance"] = row["provenance"].replace('"sim-qwq"', '"other"', 1)
    shard.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n")
    with pytest.raises(ArtifactError, match=rf"{shard}: record {exs[1].id}: field 'provenance.teacher'"):
        store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, P, shard_size=4)
    del row["parse_ok"]
    shard.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="field 'parse_ok': missing field"):
        store.fill(KEY, SimulatedTeacher("sim-qwq"), exs, P, shard_size=4)


def test_non_string_rationale_from_backend(tmp_path):
    exs = arith_examples(3)
    bad = Scripted("bad", lambda ex: None)
    with pytest.raises(DataError, match=rf"record {exs[0].id}, field 'rationale'.*non-string"):
        RationaleStore(tmp_path / "s").fill(KEY, bad, exs, P)
    assert not (tmp_path / "s" / KEY / "bad").exists()


def test_hf_teacher_into_store(tmp_path):
    from compact.teachers.hf import HFTeacher
    from compact.teachers.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    t = HFTeacher(tiny_llama(tok), tokenizer=tok, name="tiny-hf", batch_size=4)
    exs = arith_examples(5)
    store = RationaleStore(tmp_path / "s")
    store.fill(KEY, t, exs, SamplingParams(max_new_tokens=4), shard_size=3)
    rows = store.load(KEY, "tiny-hf").to_list()
    assert len(rows) == 5 and not any(r["parse_ok"] for r in rows)  # gibberish has no answer line
    assert all(r["steps_correct"] is None and r["n_errors"] is None for r in rows)  # no ground truth
    prov = json.loads(rows[0]["provenance"])
    assert prov["backend"] == "hf" and prov["sampling"]["max_new_tokens"] == 4


# ---------------------------------------------------------------------------------------------------------
# the multi-teacher view

def _view_store(tmp_path):
    """Teachers: 'good' always right, 'wrong' wrong on even questions, 'mute' unparseable on every 3rd,
    'partial' answered only the first 4 questions (missing rows)."""
    exs = arith_examples(9)
    idx = {e.id: i for i, e in enumerate(exs)}
    gold = {e.id: e.answer for e in exs}
    store = RationaleStore(tmp_path / "s")
    store.put_questions(KEY, exs)
    teachers = [
        Scripted("good", lambda e: f"Work.\nThe answer is {gold[e.id]}."),
        Scripted("wrong", lambda e: f"Work.\nThe answer is {int(gold[e.id]) + (idx[e.id] % 2 == 0)}."),
        Scripted("mute", lambda e: "I am not sure." if idx[e.id] % 3 == 0 else f"The answer is {gold[e.id]}."),
    ]
    for t in teachers:
        store.fill(KEY, t, exs, P, shard_size=4)
    store.fill(KEY, Scripted("partial", lambda e: f"The answer is {gold[e.id]}."), exs[:4], P)
    return store, exs


def test_view_policies(tmp_path):
    store, exs = _view_store(tmp_path)
    three = ["good", "wrong", "mute"]
    inst = build_instances(store, KEY, three)
    assert [i.id for i in inst] == [e.id for j, e in enumerate(exs) if j % 3 != 0]
    assert all(i.teachers == three and len(i.rationales) == 3 for i in inst)
    assert inst[0].question == exs[1].question and inst[0].answer == exs[1].answer
    assert [lab["final_correct"] for lab in inst[0].labels] == [True, True, True]  # exs[1]: odd index
    inst = build_instances(store, KEY, three, policy="drop_teacher")
    assert len(inst) == 9 and inst[0].teachers == ["good", "wrong"] and inst[1].teachers == three
    inst = build_instances(store, KEY, three, policy="keep")
    assert all(len(i.rationales) == 3 for i in inst) and inst[0].rationales[2] == "I am not sure."
    assert inst[0].labels[2]["parse_ok"] is False
    inst = build_instances(store, KEY, ["good", "partial"], policy="drop_question")
    assert [i.id for i in inst] == [e.id for e in exs[:4]]
    inst = build_instances(store, KEY, ["good", "partial"], policy="keep")  # missing rows cannot be kept
    assert len(inst) == 9 and inst[-1].teachers == ["good"]


def test_view_correctness_filters(tmp_path):
    store, exs = _view_store(tmp_path)
    both = ["good", "wrong"]
    assert len(build_instances(store, KEY, both, correctness_filter="none")) == 9
    assert len(build_instances(store, KEY, ["wrong"], correctness_filter="any_correct")) == 4
    inst = build_instances(store, KEY, both, correctness_filter="all_correct")
    assert [i.id for i in inst] == [e.id for j, e in enumerate(exs) if j % 2 == 1]
    inst = build_instances(store, KEY, both, correctness_filter="correct_only")
    assert len(inst) == 9 and inst[0].teachers == ["good"] and inst[1].teachers == both


def test_view_defaults_export_and_errors(tmp_path):
    store, exs = _view_store(tmp_path)
    assert store.teachers(KEY) == ["good", "mute", "partial", "wrong"]  # no store.json: sorted
    inst = build_instances(store, KEY, ["good", "wrong"])
    ds = instances_to_dataset(inst)
    assert ds.column_names == ["id", "question", "answer", "answer_type", "source", "rationales", "teachers",
                               "labels"]
    back = instances_from_dataset(ds)
    assert back == inst
    broken = ds.to_list()
    broken[2]["rationales"][1] = ""
    with pytest.raises(DataError, match=rf"x.arrow, record {inst[2].id}, field 'rationales\[1\]'"):
        instances_from_dataset(broken, path="x.arrow")
    with pytest.raises(ConfigError, match="unknown teacher 'nobody'"):
        build_instances(store, KEY, ["good", "nobody"])
    with pytest.raises(ConfigError, match="unknown policy"):
        build_instances(store, KEY, policy="skip")
    with pytest.raises(ConfigError, match="unknown correctness_filter"):
        build_instances(store, KEY, correctness_filter="some")
    assert disagreement(store, KEY, ["good", "wrong"]) == pytest.approx(5 / 9)
    assert disagreement(store, KEY, ["good", "mute"]) == pytest.approx(3 / 9)
    rows = summarize(store)
    assert {r["teacher"] for r in rows} == {"good", "wrong", "mute", "partial"}
    assert next(r for r in rows if r["teacher"] == "wrong")["accuracy"] == pytest.approx(4 / 9)
