"""One inputs room under every stage: resolved once, validated once.

* :mod:`.model`      the student and its tokenizer (safetensors only unless allowed; LoRA), loaders for trained
  folders, content hashes, the one small-Qwen2 recipe
* :mod:`.instances`  training instances from a rationale store, a generate config or a JSONL file
* :mod:`.encode`     text -> :class:`compact.method.batch.Batch` (chat template, truncation, collation)
"""
