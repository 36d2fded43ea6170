"""Teachers: simulated pool (styles, slips that propagate, labels), HF backend (tiny model), vLLM contract."""
import random
import re
import statistics
import types

import pytest

from compact.data.answers import extract_strict, is_correct
from compact.data.records import Example
from compact.errors import CompactError, ConfigError, DataError
from compact.teachers.base import Generation, SamplingParams, Teacher, derive_seed
from compact.teachers.simulated import (
    DEFAULT_POOL,
    SimulatedProfile,
    SimulatedTeacher,
    default_pool,
)


def arith_examples(n: int, seed: int = 0, prefix: str = "q") -> list[Example]:
    """World-like arith records built by hand: 2-4 chained steps with refs (see compact.data.records)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        steps, value = [], None
        for j in range(rng.choice([2, 3, 3, 4])):
            op = rng.choice("+-*")
            if j == 0:
                a, b, refs = rng.randint(2, 40), rng.randint(2, 20), [None, None]
            else:
                a, b, refs = value, rng.randint(2, 12), [j - 1, None]
            value = {"+": a + b, "-": a - b, "*": a * b}[op]
            steps.append({"op": op, "args": [a, b], "refs": refs, "value": value, "desc": f"marbles after step {j + 1}"})
        meta = {"task": "arith", "steps": steps}
        if i % 3 == 0:
            meta["distractors"] = ["Tom is 9 years old."]
        out.append(Example(id=f"{prefix}{i:04d}", question=f"Question {i}?", answer=str(value), answer_type="number",
                           source="world", split="train", meta=meta))
    return out


def ood_examples(n: int, kind: str) -> list[Example]:
    out = []
    for i in range(n):
        if kind == "mcq":
            out.append(Example(id=f"m{i}", question="Which is a bird?\nAnswer choices: (A) robin (B) cat (C) dog "
                               "(D) cow (E) fish", answer="ABCDE"[i % 5], answer_type="choice", source="world",
                               choices=("robin", "cat", "dog", "cow", "fish"),
                               meta={"task": "mcq", "facts": ["A robin is a bird."]}))
        else:
            out.append(Example(id=f"y{i}", question="Can a robin fly?", answer=["yes", "no"][i % 2],
                               answer_type="yesno", source="world",
                               meta={"task": "yesno", "facts": ["A robin is a bird.", "Birds can fly."]}))
    return out


P = SamplingParams()


# ---------------------------------------------------------------------------------------------------------
# simulated teachers

def test_pool_names_and_protocol():
    pool = default_pool()
    assert [t.name for t in pool] == ["sim-r1-distill", "sim-qwen-instruct", "sim-llama-instruct", "sim-qwq"]
    assert [t.paper_name for t in pool] == ["DeepSeek-R1-Distill-Llama-70B", "Qwen2.5-72B-Instruct",
                                            "Llama-3.1-70B-Instruct", "QwQ-32B"]
    assert all(isinstance(t, Teacher) for t in pool)


def test_every_rationale_ends_with_answer_line_and_labels_match_text():
    exs = arith_examples(200)
    for t in default_pool():
        gens = t.generate(exs, P)
        for ex, (g,) in zip(exs, gens):
            last = g.text.strip().splitlines()[-1]
            assert last.startswith("The answer is ") and last.endswith(".")
            pred = extract_strict(g.text, "number")
            assert pred is not None
            assert g.meta["final_correct"] == is_correct(pred, ex.answer, "number")
            if not g.meta["final_correct"]:  # a wrong final answer always comes from an uncorrected slip
                assert g.meta["n_errors"] >= 1 and not g.meta["steps_correct"]


def test_deterministic_and_order_independent():
    exs = arith_examples(60)
    t = SimulatedTeacher("sim-qwq")
    a = {ex.id: g[0].text for ex, g in zip(exs, t.generate(exs, P))}
    rev = list(reversed(exs))
    b = {ex.id: g[0].text for ex, g in zip(rev, SimulatedTeacher("sim-qwq").generate(rev, P))}
    assert a == b
    c = {ex.id: g[0].text for ex, g in zip(exs, t.generate(exs, SamplingParams(seed=1)))}
    assert a != c  # the seed matters
    two = t.generate(exs, SamplingParams(n=2))
    assert [g[0].text for g in two] == [a[ex.id] for ex in exs]  # sample 0 does not depend on n
    assert any(g[0].text != g[1].text for g in two)


class _ScriptedRng:
    """random.Random stand-in: random() replays a script, choice() takes the first option."""

    def __init__(self, script):
        self.script = list(script)

    def random(self):
        return self.script.pop(0) if self.script else 0.99

    def choice(self, seq):
        return list(seq)[0]


def test_slip_propagates_through_refs():
    ex = Example(id="p", question="?", answer="57", answer_type="number", source="world", meta={"steps": [
        {"op": "+", "args": [12, 7], "refs": [None, None], "value": 19, "desc": "apples Tom has"},
        {"op": "*", "args": [19, 3], "refs": [0, None], "value": 57, "desc": "apples in all"}]})
    t = SimulatedTeacher("x", SimulatedProfile(style="concise", step_error_rate=0.5, arithmetic_share=1.0))
    # step 0: slip (0.0 < rate), arithmetic (0.0 < share), not caught (0.99 >= 0); delta = 1 * -1
    steps = t._walk(ex, ex.meta["steps"], _ScriptedRng([0.0, 0.0, 0.99, 0.99]))
    assert [s.value for s in steps] == [18, 54]          # 12 + 7 written as 18, and 18 * 3 carried on
    assert steps[1].args[0] == 18 and steps[1].gold == 57 and steps[1].slip == ""
    t2 = SimulatedTeacher("y", SimulatedProfile(style="reflective", step_error_rate=0.5, catch_rate=1.0))
    steps = t2._walk(ex, ex.meta["steps"], _ScriptedRng([0.0, 0.0, 0.0, 0.99]))
    assert steps[0].wrong_value == 18 and [s.value for s in steps] == [19, 57]  # caught: the chain stays right


def test_caught_slip_is_corrected_in_text():
    exs = arith_examples(300)
    t = SimulatedTeacher("r1", SimulatedProfile(style="reflective", step_error_rate=0.3, catch_rate=1.0))
    gens = [g[0] for g in t.generate(exs, P)]
    caught = [g for g in gens if g.meta["n_corrected"]]
    assert caught and all(g.meta["final_correct"] and "Wait, that's not right" in g.text for g in caught)


def test_styles_differ():
    exs = arith_examples(100)
    texts = {t.name: [g[0].text for g in t.generate(exs, P)] for t in default_pool()}
    mean_len = {k: statistics.mean(len(x) for x in v) for k, v in texts.items()}
    assert mean_len["sim-qwen-instruct"] < min(mean_len["sim-r1-distill"], mean_len["sim-llama-instruct"],
                                               mean_len["sim-qwq"])
    r1 = " ".join(texts["sim-r1-distill"])
    for word in ("Therefore,", "Wait,", "Let me check", "Let me recompute"):
        assert word in r1
    # the concise teacher writes the equations only, one bare "a op b = c." line per step
    assert all(re.fullmatch(r"(?:-?\d+ [-+*/] \d+ = -?\d+\.\n)+The answer is -?\d+\.", x)
               for x in texts["sim-qwen-instruct"])
    assert "Hmm" in " ".join(texts["sim-qwq"]) and "Wait, is that right?" in " ".join(texts["sim-qwq"])
    assert all("Here we " in x for x in texts["sim-llama-instruct"])  # says each operation in words
    # the shared skeleton: every style writes each step as a bare "a op b = c." line, the base student's form
    for name, xs in texts.items():
        assert all(re.search(r"^-?\d+ [-+*/] \d+ = -?\d+\.$", x, re.M) for x in xs), name
    assert "Tom is 9 years old." in texts["sim-llama-instruct"][0]  # distractors are mentioned (and dismissed)


def test_default_pool_reliability_and_disagreement():
    """Defaults: qwen most reliable, qwq least, and the four disagree on 30-50% of questions."""
    exs = arith_examples(600, seed=3)
    preds, acc = {}, {}
    for t in default_pool():
        gens = [g[0] for g in t.generate(exs, P)]
        preds[t.name] = [extract_strict(g.text, "number") for g in gens]
        acc[t.name] = statistics.mean(g.meta["final_correct"] for g in gens)
    assert acc["sim-qwen-instruct"] == max(acc.values()) and acc["sim-qwq"] == min(acc.values())
    assert all(0.6 < a < 0.99 for a in acc.values())
    disagree = statistics.mean(len({preds[n][i] for n in preds}) > 1 for i in range(len(exs)))
    assert 0.3 <= disagree <= 0.5


@pytest.mark.parametrize("kind", ["mcq", "yesno"])
def test_ood_answers_from_facts(kind):
    exs = ood_examples(400, kind)
    t = SimulatedTeacher("sim-qwen-instruct")
    gens = [g[0] for g in t.generate(exs, P)]
    typ = "choice" if kind == "mcq" else "yesno"
    preds = [extract_strict(g.text, typ) for g in gens]
    assert all(p is not None for p in preds)
    acc = statistics.mean(is_correct(p, e.answer, typ) for p, e in zip(preds, exs))
    assert abs(acc - DEFAULT_POOL["sim-qwen-instruct"][1].ood_accuracy) < 0.07
    assert all(g.meta["final_correct"] == is_correct(p, e.answer, typ) for g, p, e in zip(gens, preds, exs))
    assert "A robin is a bird." in gens[0].text


def test_simulated_bad_input():
    with pytest.raises(ConfigError, match="unknown simulated teacher 'sim-gpt'"):
        SimulatedTeacher("sim-gpt")
    with pytest.raises(ConfigError, match="step_error_rate"):
        SimulatedTeacher("x", SimulatedProfile(step_error_rate=2.0))
    real = Example(id="gsm8k-1", question="q", answer="3", answer_type="number", source="gsm8k")
    with pytest.raises(DataError, match="record gsm8k-1, field 'meta'"):
        SimulatedTeacher("sim-qwq").generate([real], P)
    bad = Example(id="b1", question="q", answer="3", answer_type="number", source="world",
                  meta={"steps": [{"op": "^", "args": [1, 2], "refs": [None, None]}]})
    with pytest.raises(DataError, match=r"record b1, field 'meta.steps\[0\]'"):
        SimulatedTeacher("sim-qwq").generate([bad], P)


def test_derive_seed_stable():
    assert derive_seed("a", 1, "q") == derive_seed("a", 1, "q") != derive_seed("a", 1, "r")
    assert 0 <= derive_seed("x") < 2**63


def test_sampling_params_validation():
    from compact.config import from_dict

    with pytest.raises(ConfigError, match="top_p"):
        from_dict(SamplingParams, {"top_p": 0})
    with pytest.raises(ConfigError, match="n "):
        from_dict(SamplingParams, {"n": 0})
    assert from_dict(SamplingParams, {"temperature": 1, "stop": ["\n\n"]}).temperature == 1.0


# ---------------------------------------------------------------------------------------------------------
# Hugging Face backend on a tiny random Llama + tiny byte-level tokenizer with a chat template

@pytest.fixture(scope="module")
def tiny():
    from compact.teachers.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    return tok, tiny_llama(tok)


def _questions(n=6):
    return [Example(id=f"h{i}", question="What is 3 + 4?" + " Think." * (i % 4), answer="7", answer_type="number",
                    source="t") for i in range(n)]


def _hf(tiny, **kw):
    from compact.teachers.hf import HFTeacher

    tok, model = tiny
    return HFTeacher(model, tokenizer=tok, name="tiny", **kw)


def test_hf_batched_greedy_equals_one_at_a_time(tiny):
    """Left padding + attention mask: a batch gives the same greedy text as prompts one by one."""
    qs = _questions(6)
    params = SamplingParams(max_new_tokens=10)
    batched = _hf(tiny, batch_size=4).generate(qs, params)
    single = _hf(tiny, batch_size=1).generate(qs, params)
    assert [g[0].text for g in batched] == [g[0].text for g in single]
    assert len({g[0].text for g in batched}) > 1  # prompts of different lengths give different outputs
    assert all(g[0].meta["n_new_tokens"] == 10 for g in batched)


def test_hf_sampling_seeded(tiny):
    qs = _questions(3)
    t = _hf(tiny, batch_size=2)
    p = SamplingParams(temperature=1.0, top_p=0.9, n=2, max_new_tokens=8, seed=5)
    a, b = t.generate(qs, p), t.generate(qs, p)
    assert [[g.text for g in x] for x in a] == [[g.text for g in x] for x in b]
    assert all(len(x) == 2 for x in a) and any(x[0].text != x[1].text for x in a)
    c = t.generate(qs, SamplingParams(temperature=1.0, top_p=0.9, n=2, max_new_tokens=8, seed=6))
    assert [[g.text for g in x] for x in a] != [[g.text for g in x] for x in c]
    assert t.last_throughput["tokens"] > 0 and t.last_throughput["tokens_per_s"] > 0
    with pytest.raises(ConfigError, match="temperature > 0"):
        t.generate(qs, SamplingParams(n=2))


def test_hf_stop_strings(tiny):
    qs = _questions(1)
    t = _hf(tiny)
    full = t.generate(qs, SamplingParams(max_new_tokens=16))[0][0].text
    pos = next(i for i, ch in enumerate(full) if i >= 3 and ch.isascii() and ch.isalnum())
    stop = full[pos]
    cut = t.generate(qs, SamplingParams(max_new_tokens=16, stop=[stop]))[0][0]
    assert stop not in cut.text
    assert full.startswith(cut.text) and len(cut.text) < len(full)
    assert cut.meta["n_new_tokens"] < 16  # generation itself stopped early, not just the text


def test_hf_chat_template_and_fallback(tiny):
    from compact.teachers.hf import HFTeacher
    from compact.teachers.prompts import plain_prompt
    from compact.teachers.tiny import tiny_tokenizer

    q = _questions(1)
    prompt = _hf(tiny).prompt_text(q[0])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "The answer is X." in prompt and "What is 3 + 4?" in prompt
    bare = tiny_tokenizer(chat_template=False)
    with pytest.raises(ConfigError, match="has no chat template.*chat_template_fallback: plain"):
        HFTeacher(tiny[1], tokenizer=bare, name="base").generate(q, SamplingParams(max_new_tokens=2))
    fb = HFTeacher(tiny[1], tokenizer=bare, name="base", chat_template_fallback="plain")
    assert fb.prompt_text(q[0]) == plain_prompt(q[0])
    assert len(fb.generate(q, SamplingParams(max_new_tokens=2))[0]) == 1


def test_hf_from_local_path(tiny, tmp_path):
    from compact.teachers.hf import HFTeacher

    tok, model = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    t = HFTeacher(str(tmp_path / "m"), name="local", batch_size=2)
    qs = _questions(2)
    p = SamplingParams(max_new_tokens=6)
    assert [g[0].text for g in t.generate(qs, p)] == [g[0].text for g in _hf(tiny).generate(qs, p)]
    prov = t.provenance()
    assert prov["backend"] == "hf" and prov["model"] == str(tmp_path / "m") and len(prov["prompt_template"]) == 12
    with pytest.raises(CompactError, match="cannot load teacher model"):
        HFTeacher(str(tmp_path / "nope"), name="x")


# ---------------------------------------------------------------------------------------------------------
# vLLM backend: the contract, with a fake engine

class FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class FakeEngine:
    """Implements the subset of vllm.LLM the backend uses: get_tokenizer() and generate(prompts, params)."""

    def __init__(self, tokenizer):
        self.tok, self.calls = tokenizer, []

    def get_tokenizer(self):
        return self.tok

    def generate(self, prompts, sampling_params):
        self.calls.append((prompts, sampling_params))
        out = []
        for prompt, sp in zip(prompts, sampling_params):
            rng = random.Random(sp.kw["seed"])
            samples = []
            for _ in range(sp.kw["n"]):
                text = f"Step 1: {rng.randint(0, 99)}.\nThe answer is {rng.randint(0, 9)}.\n\nextra"
                samples.append(types.SimpleNamespace(text=text, token_ids=list(range(len(text) // 4))))
            out.append(types.SimpleNamespace(prompt=prompt, outputs=samples))
        return out


def test_vllm_contract(tiny):
    from compact.teachers.vllm_backend import VLLMTeacher

    eng = FakeEngine(tiny[0])
    t = VLLMTeacher("org/model-70b", revision="abc123", tensor_parallel_size=4, engine=eng,
                    sampling_params_cls=FakeSamplingParams)
    assert t.name == "model-70b"
    qs = _questions(3)
    p = SamplingParams(temperature=0.7, top_p=0.95, n=2, max_new_tokens=64, seed=1, stop=["\n\n"])
    out = t.generate(qs, p)
    assert [len(x) for x in out] == [2, 2, 2]
    assert all(g.text.endswith(".") and "extra" not in g.text and g.meta["n_new_tokens"] > 0 for x in out for g in x)
    prompts, sps = eng.calls[0]
    assert prompts[0] == tiny[0].apply_chat_template(
        [{"role": "system", "content": "You are a careful teacher who solves problems step by step."},
         {"role": "user", "content": prompts[0].split("<|im_start|>user\n")[1].split("<|im_end|>")[0]}],
        tokenize=False, add_generation_prompt=True)
    kw = sps[0].kw
    assert (kw["n"], kw["temperature"], kw["top_p"], kw["max_tokens"], kw["stop"]) == (2, 0.7, 0.95, 64, ["\n\n"])
    seeds = [sp.kw["seed"] for sp in sps]
    assert len(set(seeds)) == 3  # one seed per question...
    again = t.generate(list(reversed(qs)), p)  # ...so order does not change any question's output
    assert [[g.text for g in x] for x in reversed(again)] == [[g.text for g in x] for x in out]
    assert t.provenance()["tensor_parallel_size"] == 4 and t.provenance()["revision"] == "abc123"


def test_vllm_result_count_checked(tiny):
    from compact.teachers.vllm_backend import VLLMTeacher

    eng = FakeEngine(tiny[0])
    eng.generate = lambda prompts, sps: []
    t = VLLMTeacher("m", engine=eng, sampling_params_cls=FakeSamplingParams)
    with pytest.raises(CompactError, match="0 results for 2 prompts"):
        t.generate(_questions(2), P)


def test_vllm_missing_extra_is_clear():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    from compact.teachers.vllm_backend import VLLMTeacher

    with pytest.raises(CompactError, match=r"compact\[vllm\]"):
        VLLMTeacher("org/model")


def test_generation_dataclass():
    g = Generation("x")
    assert g.meta == {}
