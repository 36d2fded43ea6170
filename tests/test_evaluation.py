"""Evaluation: decoding, stopping, extraction, metrics, artifacts, CLI (tiny models, no downloads)."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from compact.data.records import Example, write_jsonl
from compact.errors import ConfigError
from compact.eval.decode import format_prompt, greedy_generate
from compact.eval.evaluate import EvalConfig, EvalResult, compute_metrics, evaluate
from compact.inputs.model import load_tokenizer


def make_tiny_student(path, *, hidden=32, layers=2, heads=4, kv_heads=2, seed=0):
    """A tiny random Qwen2 + a byte-level chat-template tokenizer (eos <|end|>, pad <|pad|>) as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

    from compact.inputs.model import small_qwen2_config

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<|pad|>", eos_token="<|end|>",
                                  additional_special_tokens=["<|user|>", "<|assistant|>"])
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    torch.manual_seed(seed)
    cfg = small_qwen2_config(len(vocab), hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                             intermediate=hidden * 2, pad_token_id=vocab["<|pad|>"], eos_token_id=vocab["<|end|>"])
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)


class ScriptedLM(torch.nn.Module):
    """A fake causal LM: for each prompt it 'greedily' emits a scripted reply, then eos (or nothing)."""

    def __init__(self, tokenizer, replies: dict[str, str], *, end_with_eos=True):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.tok, self.replies, self.end_with_eos = tokenizer, replies, end_with_eos
        self.generation_config = SimpleNamespace(eos_token_id=tokenizer.eos_token_id)
        self.calls = 0

    def _logits(self, want):
        V = len(self.tok)
        out = torch.zeros(len(want), 1, V)
        for i, t in enumerate(want):
            out[i, 0, t] = 1.0
        return out

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, use_cache=True):
        self.calls += 1
        if past_key_values is None:  # prefill: find each row's question, queue its reply
            scripts = []
            for row, m in zip(input_ids.tolist(), attention_mask.tolist()):
                text = self.tok.decode([t for t, k in zip(row, m) if k], skip_special_tokens=True)
                ids = self.tok(self.replies[text], add_special_tokens=False)["input_ids"]
                scripts.append(ids + ([self.tok.eos_token_id] if self.end_with_eos else []))
            cache = {"scripts": scripts, "step": 0}
        else:
            cache = past_key_values
            cache["step"] += 1
        # fallback token "x" once the script is used up (only without eos)
        fill = self.tok("x", add_special_tokens=False)["input_ids"][0]
        want = [s[cache["step"]] if cache["step"] < len(s) else fill for s in cache["scripts"]]
        return SimpleNamespace(logits=self._logits(want), past_key_values=cache)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_tiny_student(tmp_path_factory.mktemp("tiny") / "student")
    return path, load_tokenizer(path, pad_to_eos=True)


def ex(i, q, a, t="number", task="arith"):
    return Example(id=f"q{i}", question=q, answer=a, answer_type=t, source="world", split="test",
                   meta={"task": task})


EXAMPLES = [ex(0, "What is 2+3?", "5"), ex(1, "What is 10 times 4, exactly?", "40"),
            ex(2, "Is a robin a bird?", "yes", "yesno", "yesno"), ex(3, "7-9?", "-2"),
            ex(4, "Pick one. A) cat B) dog", "B", "choice", "mcq")]
REPLIES = {
    "What is 2+3?": "2+3=5.\nThe answer is 5.\nextra text that must not appear",
    "What is 10 times 4, exactly?": "10*4=41 maybe, so 40",            # no answer line: lenient only
    "Is a robin a bird?": "A robin is a bird.\nThe answer is yes.",     # ends with eos
    "7-9?": "The answer is 2.\n",                                      # wrong
    "Pick one. A) cat B) dog": "Dogs bark.\nThe answer is B.\n",
}


def test_scripted_generation_stops_and_scores(tiny):
    _, tok = tiny
    model = ScriptedLM(tok, REPLIES)
    res = evaluate(model, tok, EXAMPLES, EvalConfig(batch_size=2, max_new_tokens=200, n_bootstrap=200))
    by = {s["id"]: s for s in res.samples}
    assert [s["id"] for s in res.samples] == ["q0", "q1", "q2", "q3", "q4"]  # input order restored
    assert by["q0"]["generation"] == "2+3=5.\nThe answer is 5.\n" and by["q0"]["stop"] == "answer_line"
    assert by["q2"]["generation"] == "A robin is a bird.\nThe answer is yes." and by["q2"]["stop"] == "eos"
    assert (by["q0"]["correct_strict"], by["q0"]["correct_lenient"]) == (True, True)
    assert by["q1"]["extracted_strict"] is None and by["q1"]["extracted_lenient"] == "40"
    assert (by["q1"]["correct_strict"], by["q1"]["correct_lenient"]) == (False, True)
    assert (by["q3"]["correct_strict"], by["q3"]["extracted_strict"]) == (False, "2")
    assert by["q4"]["correct_strict"] and by["q2"]["correct_strict"]
    assert by["q0"]["prompt"] == "<|user|>What is 2+3?<|end|><|assistant|>"
    for s in res.samples:
        assert set(s) >= {"id", "task", "prompt", "generation", "extracted_strict", "extracted_lenient", "gold",
                          "correct_strict", "correct_lenient"}
    m = res.metrics
    assert m["arith"]["n"] == 3 and m["arith"]["strict"] == pytest.approx(1 / 3)
    assert m["arith"]["lenient"] == pytest.approx(2 / 3)
    assert m["all"]["strict"] == pytest.approx(3 / 5) and m["all"]["lenient"] == pytest.approx(4 / 5)
    assert m["all"]["strict_ci_low"] <= 0.6 <= m["all"]["strict_ci_high"]
    assert m["yesno"]["strict_ci_low"] == m["yesno"]["strict_ci_high"] == 1.0
    assert res.pooled(["yesno", "mcq"])["accuracy"] == 1.0


def test_max_new_tokens_and_no_answer_line_stop(tiny):
    _, tok = tiny
    model = ScriptedLM(tok, REPLIES, end_with_eos=False)
    res = evaluate(model, tok, EXAMPLES[:2], EvalConfig(max_new_tokens=10, n_bootstrap=10))
    assert res.samples[0]["generation"] == "2+3=5.\nThe" and res.samples[0]["stop"] == "length"
    res = evaluate(model, tok, EXAMPLES[:1], EvalConfig(max_new_tokens=60, stop_at_answer_line=False,
                                                        n_bootstrap=10))
    assert res.samples[0]["generation"].startswith("2+3=5.\nThe answer is 5.\nextra text")
    assert res.samples[0]["stop"] == "length"


def test_batch_stops_early_when_all_rows_finish(tiny):
    _, tok = tiny
    model = ScriptedLM(tok, {"What is 2+3?": "The answer is 5."})
    prompt = tok(format_prompt(tok, "What is 2+3?"), add_special_tokens=False)["input_ids"]
    new, reasons = greedy_generate(model, [prompt, prompt], pad_id=tok.pad_token_id, eos_ids={tok.eos_token_id},
                                   max_new_tokens=500)
    assert reasons == ["eos", "eos"] and tok.decode(new[0]) == "The answer is 5."
    assert model.calls == len("The answer is 5.") + 1  # prefill + one step per token, then stop


def test_matches_hf_generate_and_is_batch_invariant(tiny):
    """Our KV-cache loop on left-padded batches = transformers' greedy generate; batching does not matter."""
    path, tok = tiny
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    questions = ["hi", "What is 12 plus 30?", "Is a cat an animal? Answer yes or no."]
    prompts = [tok(format_prompt(tok, q), add_special_tokens=False)["input_ids"] for q in questions]
    ours, _ = greedy_generate(model, prompts, pad_id=tok.pad_token_id, eos_ids={tok.eos_token_id},
                              max_new_tokens=12)
    L = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (L - len(p)) + p for p in prompts])
    mask = (torch.arange(L)[None, :] >= torch.tensor([L - len(p) for p in prompts])[:, None]).long()
    with torch.no_grad():
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[:, L:]
    for i in range(len(prompts)):
        want = [t for t in ref[i].tolist()]
        if tok.eos_token_id in want:
            want = want[:want.index(tok.eos_token_id)]
        assert ours[i] == want
    for i, p in enumerate(prompts):
        alone, _ = greedy_generate(model, [p], pad_id=tok.pad_token_id, eos_ids={tok.eos_token_id},
                                   max_new_tokens=12)
        assert alone[0] == ours[i]


def test_evaluate_real_tiny_model_is_deterministic(tiny):
    path, tok = tiny
    cfg = EvalConfig(batch_size=2, max_new_tokens=8, n_bootstrap=50)
    a = evaluate(str(path), None, EXAMPLES, cfg)
    b = evaluate(str(path), None, EXAMPLES, EvalConfig(batch_size=4, max_new_tokens=8, n_bootstrap=50,
                                                       sort_by_length=False))
    assert [s["generation"] for s in a.samples] == [s["generation"] for s in b.samples]
    assert a.metrics == b.metrics


def test_result_roundtrip_and_metrics(tmp_path):
    samples = [{"id": str(i), "task": "t" if i < 3 else "u", "correct_strict": i % 2 == 0,
                "correct_lenient": True, "extracted_strict": None if i == 1 else "1"} for i in range(5)]
    m = compute_metrics(samples, n_bootstrap=100, seed=1)
    assert list(m) == ["t", "u", "all"]
    assert m["t"]["strict"] == pytest.approx(2 / 3) and m["u"]["strict"] == 0.5 and m["all"]["no_answer"] == 0.2
    res = EvalResult(samples=samples, metrics=m)
    res.write(tmp_path)
    back = EvalResult.read(tmp_path)
    assert back.samples == samples and back.metrics == json.loads(json.dumps(m))


def test_config_validation():
    with pytest.raises(ConfigError):
        from compact.config import from_dict

        from_dict(EvalConfig, {"data": {"source": "jsonl"}})
    with pytest.raises(ConfigError):
        from compact.config import from_dict

        from_dict(EvalConfig, {"batch_size": 0})


def test_cli_on_jsonl_and_gsm8k_schema(tiny, tmp_path, monkeypatch, capsys):
    """`compact eval` writes samples, metrics and a manifest under artifacts/eval/<model>-<hash>/."""
    path, _ = tiny
    from compact import cli

    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    data = tmp_path / "qs.jsonl"
    write_jsonl(EXAMPLES, data)
    argv = ["eval", "--set", f"model={path}", "--set", "data.source=jsonl", "--set", f"data.path={data}",
            "--set", "max_new_tokens=4", "--set", "n_bootstrap=20"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "arith" in out and "wrote" in out
    (run_dir,) = (tmp_path / "art" / "eval").iterdir()
    assert run_dir.name.startswith("student-")
    assert {"samples.jsonl", "metrics.json", "manifest.json", "config.yaml"} <= {p.name for p in run_dir.iterdir()}
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["kind"] == "eval" and man["n_examples"] == 5 and man["model_fingerprint"]
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 5
    assert cli.main(argv) == 0  # cached
    assert len(list((tmp_path / "art" / "eval").iterdir())) == 1
    # real GSM8K schema through the benchmark adapter
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("\n".join(json.dumps({"question": q, "answer": f"work\n#### {a}"})
                             for q, a in [("Tom has 3 apples and buys 2. How many?", "5"),
                                          ("A pen costs $1,200. Price?", "1,200")]) + "\n")
    argv = ["eval", "--set", f"model={path}", "--set", "data.source=benchmark", "--set",
            "data.benchmark.name=gsm8k", "--set", f"data.benchmark.path={gsm}", "--set", "max_new_tokens=4",
            "--set", "n_bootstrap=20"]
    assert cli.main(argv) == 0
    dirs = sorted((tmp_path / "art" / "eval").iterdir())
    assert len(dirs) == 2
    res = EvalResult.read([d for d in dirs if json.loads((d / "manifest.json").read_text())["n_examples"] == 2][0])
    assert {s["gold"] for s in res.samples} == {"5", "1200"} and set(res.metrics) == {"gsm8k", "all"}
    # bad input: one line, non-zero exit, nothing written
    assert cli.main(["eval", "--set", f"model={tmp_path / 'nope'}", "--set", "data.source=jsonl",
                     "--set", f"data.path={data}"]) == 2
    assert "model not found" in capsys.readouterr().err


def test_greedy_decoding_builds_no_autograd_graph(tiny):
    """Decoding runs under inference mode with the KV cache passed under the installed transformers' name:
    every forward sees grad disabled, and the cache argument reaches the model after the first step."""
    from transformers import AutoModelForCausalLM

    from compact.eval.decode import cache_argument

    path, tok = tiny
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    seen = []

    def hook(module, args, kwargs):
        seen.append((torch.is_grad_enabled(), kwargs.get(cache_argument(model)) is not None))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        prompt = tok(format_prompt(tok, "What is 2+3?"), add_special_tokens=False)["input_ids"]
        greedy_generate(model, [prompt], pad_id=tok.pad_token_id, eos_ids=set(), max_new_tokens=4)
    finally:
        handle.remove()
    assert len(seen) == 4 and not any(grad for grad, _ in seen)
    assert [cached for _, cached in seen] == [False, True, True, True]


class FakeVLLM:
    """The subset of vllm.LLM the eval backend uses: generate([{"prompt_token_ids": ...}], SamplingParams) with
    greedy outputs (a scripted reply per question, eos included in token_ids as vLLM reports it)."""

    def __init__(self, tokenizer, replies, *, end_with_eos=True):
        self.tok, self.replies, self.end_with_eos, self.calls = tokenizer, replies, end_with_eos, []

    def generate(self, prompts, sp):
        self.calls.append((prompts, sp))
        out = []
        for p in prompts:
            text = self.tok.decode(p["prompt_token_ids"], skip_special_tokens=True)
            ids = self.tok(self.replies[text], add_special_tokens=False)["input_ids"]
            ids = ids + ([self.tok.eos_token_id] if self.end_with_eos else [])
            fill = self.tok("x", add_special_tokens=False)["input_ids"][0]
            ids = (ids + [fill] * sp.kw["max_tokens"])[:sp.kw["max_tokens"]]
            done = self.tok.eos_token_id in ids
            if done:
                ids = ids[:ids.index(self.tok.eos_token_id) + 1]
            out.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, finish_reason="stop" if done else "length")]))
        return out


class FakeSP:
    def __init__(self, **kw):
        self.kw = kw


@pytest.mark.parametrize("kw,eos", [({"max_new_tokens": 200}, True), ({"max_new_tokens": 10}, False),
                                    ({"max_new_tokens": 60, "stop_at_answer_line": False}, False)],
                         ids=["answer-line-and-eos", "length", "no-answer-line-stop"])
def test_vllm_backend_gives_the_hf_decoders_samples(tiny, kw, eos):
    """The same scripted greedy replies through the HF decoder and through a vLLM-like engine give the same
    samples: the answer-line stop applied after vLLM cuts where the HF decoder stopped, eos is dropped."""
    _, tok = tiny
    cfg = EvalConfig(batch_size=2, n_bootstrap=50, **kw)
    hf = evaluate(ScriptedLM(tok, REPLIES, end_with_eos=eos), tok, EXAMPLES, cfg)
    engine = FakeVLLM(tok, REPLIES, end_with_eos=eos)
    vl = evaluate(None, tok, EXAMPLES, cfg, engine=engine, sampling_params_cls=FakeSP)
    assert vl.samples == hf.samples and vl.metrics == hf.metrics
    prompts, sp = engine.calls[0]
    assert sp.kw["temperature"] == 0.0 and sp.kw["n"] == 1 and sp.kw["stop_token_ids"] == [tok.eos_token_id]
    assert sorted(p["prompt_token_ids"] for p in prompts) == sorted(
        tok(s["prompt"], add_special_tokens=False)["input_ids"] for s in hf.samples)


def test_eval_backend_names_artifacts_only_when_it_is_not_hf():
    """backend and tensor_parallel_size were added later: at hf / 1 an evaluation keeps its earlier name."""
    import hashlib
    import json as _json

    from compact.config import config_hash, to_dict

    cfg = EvalConfig(model="m")
    before = {k: v for k, v in to_dict(cfg).items() if k not in EvalConfig.HASH_DEFAULTS}
    old = hashlib.sha256(_json.dumps(before, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
    assert config_hash(cfg) == old[:12]
    assert config_hash(EvalConfig(model="m", backend="vllm")) != config_hash(cfg)
    with pytest.raises(ValueError, match="backend must be"):
        EvalConfig(backend="tgi").validate()


def test_vllm_backend_without_the_extra_is_one_line(monkeypatch):
    from compact.errors import CompactError
    from compact.eval import vllm_decode

    monkeypatch.setattr(vllm_decode, "vllm_available", lambda: False)
    assert vllm_decode.resolve_backend("auto") == "hf"
    with pytest.raises(CompactError, match=r"compact\[vllm\]"):
        vllm_decode.resolve_backend("vllm")


def test_pruning_finished_rows_keeps_every_rows_tokens(tiny):
    """prune: finished rows leave the batch and its KV cache (DynamicCache.batch_select_indices); every row's greedy
    tokens and stop reason are the whole batch's, with rows that stop at different steps."""
    from compact.inputs.model import small_qwen2

    _, tok = tiny
    # a wide initialisation: a random student whose greedy rows differ (the default one repeats one token)
    model = small_qwen2(len(tok), seed=1, hidden=32, heads=4, kv_heads=2, intermediate=64, initializer_range=0.5,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id).eval()
    prompts = [tok(format_prompt(tok, q), add_special_tokens=False)["input_ids"]
               for q in ("What is 2+3?", "Is a robin a bird?", "7-9?", "Pick one. A) cat B) dog", "x" * 30)]
    kw = dict(pad_id=tok.pad_token_id, max_new_tokens=24)
    first, _ = greedy_generate(model, prompts, eos_ids={tok.eos_token_id}, **kw)
    eos = {tok.eos_token_id, first[0][6], first[1][13]}  # two tokens that end rows at different steps
    whole = greedy_generate(model, prompts, eos_ids=eos, **kw)
    assert len({len(g) for g in whole[0]}) > 2 and "length" in whole[1] and "eos" in whole[1]
    for prune in (0.5, 0.9):
        assert greedy_generate(model, prompts, eos_ids=eos, prune=prune, **kw) == whole
