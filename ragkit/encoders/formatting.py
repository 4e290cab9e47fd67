"""How a text (and its instruction) becomes token ids: ragkit's format and the reference llm2vec's.

Two ways to put an instruction in front of a text, and so two sets of vectors:

- "separate" (ragkit): [BOS] + tokens(instruction) + tokens(text), tokenized apart, so the number
  of instruction tokens is exact and a text's tokens do not depend on its instruction.
- "llm2vec" (the reference, llm2vec 0.2.3): `instruction.strip() + " " + text` tokenized as one
  string; the pooled tokens are the last len(tokens(text)) of it. Texts whose tokens exceed
  `doc_max_length` (400) are first cut to proportionally fewer words, as `LLM2Vec._convert_to_str`
  does. Published LLM2Vec checkpoints were trained and scored this way.

A template puts the (instructed) text inside a prompt, e.g. a chat model's user turn; llm2vec wraps
the texts of five instruct base models in their user-turn markers (`prepare_for_tokenization`), and
`reference_template` gives the same wrapping for the same base models.
"""

from __future__ import annotations

from typing import Literal, get_args

from transformers import PreTrainedTokenizerBase

from ragkit.errors import RagkitError

InstructionJoin = Literal["separate", "llm2vec"]
INSTRUCTION_JOINS: tuple[str, ...] = get_args(InstructionJoin)
InputFormat = Literal["ragkit", "llm2vec"]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)

TEXT_SLOT = "{text}"
TEMPLATES: dict[str, str] = {
    "plain": TEXT_SLOT,
    "llama-3-instruct": "<|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>",
    "mistral-instruct": "[INST] {text} [/INST]",
    "llama-2-chat": "[INST] {text} [/INST]",
    "gemma-2-it": "<bos><start_of_turn>user\n{text}<end_of_turn>",
    "qwen2-instruct": "<|im_start|>user\n{text}<|im_end|>",
}
# The base models whose texts llm2vec 0.2.3 wraps in a user turn, keyed as it keys them (the name the
# base weights were loaded under, which an LLM2Vec adapter's config names).
LLM2VEC_TEMPLATES: dict[str, str] = {
    "meta-llama/Meta-Llama-3-8B-Instruct": "llama-3-instruct",
    "mistralai/Mistral-7B-Instruct-v0.2": "mistral-instruct",
    "meta-llama/Llama-2-7b-chat-hf": "llama-2-chat",
    "google/gemma-2-9b-it": "gemma-2-it",
    "Qwen/Qwen2-1.5B-Instruct": "qwen2-instruct",
    "Qwen/Qwen2-7B-Instruct": "qwen2-instruct",
}
LLM2VEC_DOC_MAX_LENGTH = 400  # llm2vec's default `doc_max_length`
LLM2VEC_SEPARATOR = "!@#$%^&*()"  # where llm2vec marks the start of the pooled text
_EOS_TEXT = {"llama": " </s>", "mistral": " </s>", "gemma": "<eos>", "qwen2": "<|endoftext|>"}


def resolve_template(template: str | None) -> str:
    """A template name (`TEMPLATES`) or a string with one "{text}" slot -> the template string."""
    if template is None:
        return TEXT_SLOT
    if template in TEMPLATES:
        return TEMPLATES[template]
    if template.count(TEXT_SLOT) != 1:
        raise RagkitError(
            f"unknown `template` {template!r}: use one of {', '.join(TEMPLATES)} "
            'or a string with one "{text}" slot where the text goes'
        )
    return template


def reference_template(base_model: str, model_type: str, pooling: str) -> str:
    """The wrapping llm2vec 0.2.3 gives texts for this base model and pooling: a user turn for the
    instruct models it names, then, for "eos_token" pooling, the EOS it appends as text."""
    template = TEMPLATES[LLM2VEC_TEMPLATES.get(base_model, "plain")]
    if pooling != "eos_token" or base_model == "meta-llama/Meta-Llama-3-8B-Instruct":
        return template  # llm2vec returns the Llama-3 turn before it would add an EOS
    if base_model == "meta-llama/Meta-Llama-3-8B":
        return template + "<|end_of_text|>"
    return template + _EOS_TEXT.get(model_type, "")


def check_join(instruction_join: str) -> None:
    """Refuse an unknown `instruction_join` in one line."""
    if instruction_join not in INSTRUCTION_JOINS:
        raise RagkitError(
            f"unknown `instruction_join` {instruction_join!r}: use one of {', '.join(INSTRUCTION_JOINS)}"
        )


class TextFormatter:
    """Token ids and pooled lengths for texts in one format; `Encoder.token_ids` uses it."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        template: str = TEXT_SLOT,
        instruction_join: InstructionJoin = "separate",
        doc_max_length: int | None = None,
        append_eos: bool = False,
    ) -> None:
        check_join(instruction_join)
        self.tokenizer = tokenizer
        self.prefix, self.suffix = resolve_template(template).split(TEXT_SLOT)
        self.instruction_join = instruction_join
        self.doc_max_length = doc_max_length
        self.append_eos = append_eos  # "eos_token" pooling in ragkit's format: pool an EOS id
        probe = tokenizer("x", add_special_tokens=True)["input_ids"]
        self.adds_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]

    def __call__(
        self, texts: list[str], instruction: str | None, max_length: int
    ) -> tuple[list[list[int]], list[int]]:
        """Each text's ids (at most `max_length`) and how many leading ids are not pooled."""
        if not texts:
            return [], []
        if self.doc_max_length is not None:
            texts = [self.cap_words(t, max_length) for t in texts]
        if self.instruction_join == "llm2vec":
            return self._joined_as_text(texts, instruction, max_length)
        return self._joined_as_tokens(texts, instruction, max_length)

    def _joined_as_tokens(
        self, texts: list[str], instruction: str | None, max_length: int
    ) -> tuple[list[list[int]], list[int]]:
        tok = self.tokenizer
        head_text = self.prefix + (instruction or "")
        prompt = tok(head_text, add_special_tokens=False)["input_ids"] if head_text else []
        tail = [tok.eos_token_id] if self.append_eos and tok.eos_token_id is not None else []
        room = max_length - len(prompt) - len(tail)
        if room < 1 + int(self.adds_bos):  # at least one text token
            raise RagkitError(
                f"the instruction takes {len(prompt)} tokens, `max_length` is {max_length}; "
                "shorten the instruction or raise `max_length`"
            )
        encoded = tok(
            [t + self.suffix for t in texts], add_special_tokens=True, truncation=True, max_length=room
        )["input_ids"]
        head = int(self.adds_bos)
        # An empty text on a tokenizer without BOS still needs one token.
        ids = [(row[:head] + prompt + row[head:] or [tok.eos_token_id]) + tail for row in encoded]
        return ids, [head + len(prompt)] * len(ids)

    def _joined_as_text(
        self, texts: list[str], instruction: str | None, max_length: int
    ) -> tuple[list[list[int]], list[int]]:
        """llm2vec's `encode`: `_convert_to_str`, `prepare_for_tokenization`, `tokenize`, step by step."""
        tok = self.tokenizer
        if instruction and instruction.strip():
            prompt = tok(instruction.strip(), add_special_tokens=True)["input_ids"]
            if len(prompt) >= max_length:
                raise RagkitError(
                    f"the instruction takes {len(prompt)} tokens, `max_length` is {max_length}; "
                    "shorten the instruction or raise `max_length`"
                )
        wrapped = bool(self.prefix or self.suffix)
        full_texts, pooled_texts = [], []
        for text in texts:
            marked = (
                f"{instruction.strip()} {LLM2VEC_SEPARATOR}{text}"
                if instruction
                else LLM2VEC_SEPARATOR + text
            )
            if wrapped:  # llm2vec strips a text before it wraps it (or appends an EOS)
                marked = self.prefix + marked.strip() + self.suffix
            parts = marked.split(LLM2VEC_SEPARATOR)
            full_texts.append("".join(parts))
            pooled_texts.append(parts[1] if len(parts) > 1 else "")
        full = tok(full_texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
        own = tok(pooled_texts, add_special_tokens=False, truncation=True, max_length=max_length)
        ids, prompt_lengths = [], []
        for row, text_ids in zip(full, own["input_ids"], strict=True):
            row = row or [tok.eos_token_id]
            ids.append(row)
            prompt_lengths.append(len(row) - min(len(text_ids), len(row)))
        return ids, prompt_lengths

    def cap_words(self, text: str, max_length: int) -> str:
        """llm2vec's `doc_max_length`: while the text has more tokens than that, keep proportionally
        fewer of its words (so the cap is in words, triggered by tokens). Without a cap, `text`."""
        cap = self.doc_max_length
        if cap is None:
            return text
        count = self._count(text, max_length)
        while count > cap:
            words = text.split()
            text = " ".join(words[: int(len(words) * cap / count)])
            count = self._count(text, max_length)
        return text

    def _count(self, text: str, max_length: int) -> int:
        ids = self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)
        return len(ids["input_ids"])
