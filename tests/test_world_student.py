"""Built worlds: determinism of data, tokenizer and model bytes; the HF API; caching; the base student.

One smoke world is built per test session (seconds); the determinism test builds it a second time.
The base-student accuracy test needs the default world (minutes to build): it runs against the
cached default world when one exists (``compact world`` builds it), and is skipped otherwise.
"""
from __future__ import annotations

import re

import pytest

from compact.config import load
from compact.paths import configs_dir
from compact.provenance import read_manifest
from compact.world import THINKING_WORDS, thinking_token_ids
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


def test_base_corpus_has_no_in_distribution_questions(smoke_world):
    cfg = _smoke_cfg()
    tok = smoke_world.tokenizer
    ood = smoke_world.examples("mcq", "train") + smoke_world.examples("yesno", "train")
    held_out = {e.question for t in ("mcq", "yesno") for s in ("dev", "test") for e in smoke_world.examples(t, s)}
    docs = S.base_corpus(cfg.corpus, cfg.tasks, ood, tok, cfg.seed, exclude=held_out)
    text = "\n".join(docs)
    turns = re.findall(r"<\|user\|>\n(.*?)<\|end\|>\n<\|assistant\|>\n(.*?)<\|end\|>", text, flags=re.DOTALL)
    users = {q for q, _ in turns}
    assert {e.question for e in ood} <= users  # the OOD train questions are taught
    assert len(users) > len(ood)  # plus fresh compositions
    assert not users & held_out  # never a dev/test question
    assert all(re.fullmatch(r"The answer is ([A-E]|yes|no)\.", a) for _, a in turns)  # answers only
    assert all(q.startswith(("Which", "What", "Where", "Does", "Is")) for q in users)
    for task in ("arith", "variation", "symbolic"):
        for e in smoke_world.examples(task, "train")[:20]:
            assert e.question not in text
    assert "How many" not in text and "Solve for x" not in text
    assert not any(w + "," in text for w in ("First", "Therefore", "So"))  # no rationales


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
# The default world's base student. Measured on default builds (500 pretraining steps): yes/no dev
# 68-70% (chance 50%); multiple choice 16-22%, i.e. AT chance (20%): the base student does not yet pick
# the right letter reliably, so only the format is asserted for mcq. In-distribution: 0% on all three tasks.
# The default world is built when missing (about 4 minutes on 2 cores): the acceptance test of the world.
OOD_MIN = {"yesno": 0.60}
ID_MAX = 0.05


@pytest.fixture(scope="session")
def default_world():
    from compact.world.build import build_world

    return build_world(load(WorldConfig, configs_dir() / "world" / "default.yaml"))


def _accuracy(world, task, limit=200):
    """Fraction of dev questions whose greedy answer ends with `The answer is <gold>.`."""
    exs = world.examples(task, "dev")[:limit]
    outs = S.generate(world.load_student(), world.tokenizer, [e.question for e in exs], max_new_tokens=16)
    pat = re.compile(r"The answer is (.+?)\.\s*$")
    hits = 0
    for o, e in zip(outs, exs):
        m = pat.search(o.strip())
        hits += bool(m and m.group(1).strip() == e.answer)
    return hits / len(exs)


@pytest.mark.slow
def test_default_base_student_answers_yesno_above_chance(default_world):
    assert _accuracy(default_world, "yesno") >= OOD_MIN["yesno"]


@pytest.mark.slow
def test_default_base_student_answers_mcq_in_format(default_world):
    exs = default_world.examples("mcq", "dev")[:50]
    outs = S.generate(default_world.load_student(), default_world.tokenizer, [e.question for e in exs],
                      max_new_tokens=16)
    assert all(re.fullmatch(r"The answer is [A-E]\.", o.strip()) for o in outs)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["arith", "variation", "symbolic"])
def test_default_base_student_cannot_reason_yet(default_world, task):
    assert _accuracy(default_world, task) <= ID_MAX
