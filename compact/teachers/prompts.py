"""The teacher prompt template: step-by-step reasoning ending with ``The answer is X.``

The template's hash goes into every stored rationale's provenance, so a changed instruction never mixes
with rationales written under the old one.
"""
from __future__ import annotations

import hashlib
import json

from ..data.records import Example
from ..errors import ConfigError

SYSTEM_PROMPT = "You are a careful teacher who solves problems step by step."

INSTRUCTIONS = {
    "number": "Give the final answer as a plain number.",
    "latex": "Give the final answer as a LaTeX expression without dollar signs.",
    "choice": "Give the final answer as the letter of the correct choice.",
    "yesno": "Give the final answer as yes or no.",
}

USER_TEMPLATE = (
    "Solve the following problem. Reason step by step, then end with a final line of the form "
    "'The answer is X.' {instruction}\n\nQuestion: {question}"
)

# used when a tokenizer has no chat template and the teacher is configured with fallback "plain"
PLAIN_TEMPLATE = "{system}\n\n{user}\n\nAnswer: Let's think step by step.\n"


def messages(example: Example) -> list[dict[str, str]]:
    """The chat messages (system + user) asking a teacher for a rationale on ``example``."""
    user = USER_TEMPLATE.format(instruction=INSTRUCTIONS[example.answer_type], question=example.question)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def plain_prompt(example: Example) -> str:
    """The documented fallback prompt for models without a chat template."""
    msgs = messages(example)
    return PLAIN_TEMPLATE.format(system=msgs[0]["content"], user=msgs[1]["content"])


def render_prompt(tokenizer, example: Example, *, fallback: str, teacher: str, model_id: str) -> str:
    """The exact prompt string: the tokenizer's chat template, else (``fallback="plain"``) the plain prompt."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages(example), tokenize=False, add_generation_prompt=True)
    if fallback == "plain":
        return plain_prompt(example)
    raise ConfigError(f"teacher {teacher!r}: tokenizer of {model_id!r} has no chat template; use an "
                      "instruction-tuned model or set chat_template_fallback: plain")


def template_hash() -> str:
    """A short hash of every template string (system, user, per-type instructions, plain fallback)."""
    blob = json.dumps([SYSTEM_PROMPT, USER_TEMPLATE, INSTRUCTIONS, PLAIN_TEMPLATE], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
