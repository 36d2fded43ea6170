"""Built worlds: determinism of data, tokenizer and model bytes; the HF API; caching; the base student.

One smoke world is built per test session (seconds); the determinism test builds it a second time.
The base-student accuracy test needs the default world (minutes to build): it runs against the
cached default world when one exists (``compact world`` builds it), and is skipped otherwise.
"""
from __future__ import annotations

import re

import pytest

from compact.config import load
from compact.method.adaptability import THINKING_WORDS, thinking_token_ids
from compact.paths import configs_dir
from compact.provenance import read_manifest
from compact.world import student as S
from compact.world.build import World, WorldConfig, build_world, load_world, world_path

pytestmark = pytest.mark.slow


def _smoke_cfg() -> WorldConfig:
    return load(WorldConfig, configs_dir() / "world" / "smoke.yaml")


def _build(root):
    import torch

    # one intra-op thread: as fast for this tiny model, and no thread thrash when the CPU is shared
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_world(_smoke_cfg(), root=root)
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory) -> World:
    return _build(tmp_path_factory.mktemp("artifacts_a"))


def _files(world: World) -> dict[str, bytes]:
    out = {}
    for p in sorted(world.path.rglob("*")):
        rel = p.relative_to(world.path).as_posix()
        if p.is_file() and rel not in ("manifest.json", "pretrain_log.jsonl"):  # timestamps live there
            out[rel] = p.read_bytes()
    return out


def test_same_seed_same_bytes(smoke_world, tmp_path):
    again = _build(tmp_path)
    a, b = _files(smoke_world), _files(again)
    assert set(a) == set(b)
    for name in ("student/model.safetensors", "tokenizer/tokenizer.json", "data/arith/dev.jsonl",
                 "data/mcq/train.jsonl", "knowledge_base.json", "base_eval.json"):
        assert name in a
    differing = [k for k in a if a[k] != b[k]]
    assert differing == []
    # the loss log matches except for wall-clock seconds
    strip = re.compile(rb'"seconds": [0-9.]+')
    assert strip.sub(b"", (smoke_world.path / "pretrain_log.jsonl").read_bytes()) == \
        strip.sub(b"", (again.path / "pretrain_log.jsonl").read_bytes())


def test_cached_by_config_hash(smoke_world, tmp_path_factory):
    root = smoke_world.path.parent.parent
    assert smoke_world.path == world_path(_smoke_cfg(), root)
    created = read_manifest(smoke_world.path)["created"]
    mtime = (smoke_world.path / "student" / "model.safetensors").stat().st_mtime_ns
    again = build_world(_smoke_cfg(), root=root)  # reused, not rebuilt
    assert again.path == smoke_world.path
    assert read_manifest(again.path)["created"] == created
    assert (again.path / "student" / "model.safetensors").stat().st_mtime_ns == mtime
    other = load(WorldConfig, configs_dir() / "world" / "smoke.yaml", ["seed=1"])
    assert world_path(other, root) != smoke_world.path


def test_manifest_and_summary(smoke_world):
    man = read_manifest(smoke_world.path)
    assert man["kind"] == "world" and man["config"]["seed"] == 0
    s = man["summary"]
    assert s["student_params"] > 0 and s["build_seconds"] > 0
    assert set(s["base_dev_accuracy"]) == set(smoke_world.tasks)
    assert s["sizes"]["mcq"] == {"train": 100, "dev": 40, "test": 40}
    log = (smoke_world.path / "pretrain_log.jsonl").read_text().splitlines()
    assert len(log) >= 2 and '"loss"' in log[0]


def test_world_api(smoke_world):
    w = load_world(smoke_world.path)
    assert w.tasks == ["arith", "variation", "symbolic", "mcq", "yesno"]
    assert w.id_tasks == ("arith", "variation", "symbolic") and w.ood_tasks == ("mcq", "yesno")
    dev = w.examples("arith", "dev")
    assert len(dev) == 20 and dev[0].id == "arith-dev-00000" and dev[0].meta["steps"]
    assert w.cfg == _smoke_cfg()
    with pytest.raises(Exception, match="unknown world task"):
        w.examples("gsm8k", "dev")
    with pytest.raises(Exception, match="unknown split"):
        w.examples("arith", "val")


def test_student_loads_through_the_standard_hf_api(smoke_world):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(smoke_world.student_path))
    tok = AutoTokenizer.from_pretrained(str(smoke_world.student_path))
    assert type(model).__name__ == "Qwen2ForCausalLM"
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    assert cfg.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.model.layers[-1].self_attn.q_proj.bias is not None
    assert (smoke_world.student_path / "model.safetensors").is_file()
    assert not list(smoke_world.student_path.glob("*.bin"))
    assert cfg.vocab_size == len(tok) and cfg.eos_token_id == tok.eos_token_id
    assert tok.chat_template and len(thinking_token_ids(tok)) == 2 * sum(" " not in w for w in THINKING_WORDS)
    m2 = smoke_world.load_student()
    assert not m2.training and next(m2.parameters()).dtype == torch.float32
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_greedy_generation_is_batched_and_stops(smoke_world):
    model, tok = smoke_world.load_student(), smoke_world.tokenizer
    qs = [e.question for e in smoke_world.examples("yesno", "dev")[:5]]
    batched = S.generate(model, tok, qs, max_new_tokens=8, batch_size=5)
    single = [S.generate(model, tok, [q], max_new_tokens=8)[0] for q in qs[:2]]
    assert batched[:2] == single  # left padding does not change greedy answers
    assert all("<|" not in o for o in batched)
    assert tok.padding_side == "right"  # restored


def test_base_corpus_teaches_facts_and_answers_but_no_reasoning(smoke_world):
    cfg = _smoke_cfg()
    tok = smoke_world.tokenizer
    held_out = {e.question for t in ("mcq", "yesno") for s in ("dev", "test") for e in smoke_world.examples(t, s)}
    id_questions = {e.question for t in ("arith", "variation", "symbolic") for s in ("train", "dev", "test")
                    for e in smoke_world.examples(t, s)}
    docs = S.base_corpus(cfg.corpus, cfg.tasks, [], tok, cfg.seed, exclude=held_out | id_questions)
    text = "\n".join(docs)
    turns = re.findall(r"<\|user\|>\n(.*?)<\|end\|>\n<\|assistant\|>\n(.*?)<\|end\|>", text, flags=re.DOTALL)
    users = {q for q, _ in turns}
    assert not users & held_out  # never an OOD dev/test question
    assert not users & id_questions  # never an ID question of any split: direct answers use fresh ones
    # one-line answers, at most one equation before them (single-step questions): no step-by-step rationale
    assert all(re.fullmatch(r"(\d+ [-+*/] \d+ = \d+\.\n)?The answer is [^\n]+\.", a) for _, a in turns)
    assert any("\n" in a for _, a in turns)
    assert any(q.startswith("How many") or q.startswith(("Solve", "What is x", "Find x")) for q in users)
    assert any(q.startswith("Where does") for q in users)  # the recall questions the probes ask
    assert not any(w + "," in text for w in ("First", "Therefore", "So"))  # no rationales
    for a, op, b, c in S.all_facts(cfg.tasks.max_value)[:50]:  # every fact, in the rationales' form
        assert S.fact_text(a, op, b, c) in text


def test_all_facts_follow_the_task_rules():
    facts = S.all_facts(20)
    assert len(facts) == len(set(facts)) == 453
    for a, op, b, c in facts:
        assert all(1 <= v <= 20 for v in (a, b, c))
        assert op != "*" or (a >= 2 and b >= 2)
        assert op != "/" or (b >= 2 and a == b * c)


def test_both_tokenizer_loaders_agree(smoke_world):
    """AutoTokenizer on the student folder (Qwen2Tokenizer) encodes exactly like the world tokenizer."""
    from transformers import AutoTokenizer

    a, b = smoke_world.tokenizer, AutoTokenizer.from_pretrained(str(smoke_world.student_path))
    assert len(a) == len(b) and a.eos_token_id == b.eos_token_id and a.pad_token_id == b.pad_token_id
    texts = [e.question for t in smoke_world.tasks for e in smoke_world.examples(t, "dev")]
    texts += ["First, 12 + 7 = 19.\nThe answer is 19.", "  x\n\n(A) 3x"]
    assert [a.encode(t) for t in texts] == [b.encode(t) for t in texts]
    msgs = [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": "So 5."}]
    assert a.apply_chat_template(msgs, tokenize=False) == b.apply_chat_template(msgs, tokenize=False)


# ---------------------------------------------------------------------------------------------------
# The default world's base student, against the calibration gates (compact.world.calibration). The default
# world is built when missing (about 10-15 minutes on 2 cores): the acceptance test of the instrument.


def test_default_world_is_calibrated_as_published():
    """The default world's calibration table, as its build measured it and the default profile published it
    (results/ is tied to today's default world config: the registry's world key is checked here, the rest by
    test_committed_results_are_fresh), passes every gate, each re-judged from its measured value against the
    gate's own threshold (the table's 'holds' column is not taken on trust). Building the default world here
    would cost ~10 minutes of pretraining; `make test-default-world` re-measures it from the built student."""
    from compact.paths import results_dir
    from compact.publish.plan import load_pipeline, make_plan
    from compact.publish.registry import read_registry
    from compact.publish.results import read_table
    from compact.world.calibration import GATES

    plan = make_plan(load_pipeline("default"))
    assert read_registry(results_dir()).keys["world"] == plan.keys["world"], "results/ come from another world"
    rows = {r["gate"]: r for r in read_table("calibration/calibration", root=results_dir())}
    assert list(rows) == [g.name for g in GATES]
    for g in GATES:
        r = rows[g.name]
        assert r["threshold"] == g.threshold and g.holds(r["value"]), r
    assert rows["yesno"]["baseline"] == 0.5  # balanced split: majority = chance


def test_calibration_table_is_what_the_student_does(smoke_world):
    """The recorded table is not taken on trust: re-measured on the built student, every value is the same."""
    import json

    from compact.world.calibration import calibrate

    import torch

    data = {t: {"test": smoke_world.examples(t, "test")} for t in smoke_world.tasks}
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the build measured it (_build): the same kernels, the same sums, the same argmax
    try:
        again = calibrate(smoke_world.load_student(), smoke_world.tokenizer, data, smoke_world.cfg.tasks.max_value)
    finally:
        torch.set_num_threads(n)
    recorded = json.loads((smoke_world.path / "calibration.json").read_text())
    assert [(r["gate"], r["value"], r["holds"]) for r in again["rows"]] == \
        [(r["gate"], r["value"], r["holds"]) for r in recorded["rows"]]


@pytest.fixture(scope="session")
def default_world():
    from compact.world.build import build_world

    return build_world(load(WorldConfig, configs_dir() / "world" / "default.yaml"))


@pytest.mark.default_world
def test_default_world_is_calibrated(default_world):
    import json

    from compact.world.calibration import GATES, failed_gates

    table = json.loads((default_world.path / "calibration.json").read_text())
    assert [r["gate"] for r in table["rows"]] == [g.name for g in GATES]
    assert not failed_gates(table), failed_gates(table)
    assert table["ood"]["yesno"]["answer_shares"] == {"no": 0.5, "yes": 0.5}  # balanced: majority = chance
    assert default_world.summary()["calibrated"] is True


@pytest.mark.default_world
def test_default_calibration_is_what_the_student_does(default_world):
    """The table is not taken on trust: the facts and an OOD split are re-measured here."""
    from compact.world.calibration import fact_accuracy, probe_accuracy

    model, tok = default_world.load_student(), default_world.tokenizer
    facts = fact_accuracy(model, tok, default_world.cfg.tasks.max_value)
    assert facts["worst"] >= 0.95, facts["per_op"]
    assert probe_accuracy(model, tok, default_world.examples("mcq", "test"))["accuracy"] >= 0.60
