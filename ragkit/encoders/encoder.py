"""`Encoder`: a decoder LLM used as a bidirectional, mean-pooled text encoder (LLM2Vec).

The same object serves adapt (training reuses `token_ids`, `pad` and `embed`), index, query, eval.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ragkit.device import resolve_device, resolve_dtype
from ragkit.encoders.bidirectional import set_bidirectional
from ragkit.encoders.card import model_card
from ragkit.encoders.formatting import (
    INPUT_FORMATS,
    LLM2VEC_DOC_MAX_LENGTH,
    TEXT_SLOT,
    InputFormat,
    InstructionJoin,
    TextFormatter,
    check_join,
    reference_template,
    resolve_template,
)
from ragkit.encoders.int8 import int8_model
from ragkit.encoders.loading import (
    BUILTIN_ENCODERS,
    DEFAULT_ENCODER,
    adapter_digests,
    load_model,
    load_tokenizer,
    quiet_transformers,
    resolve,
)
from ragkit.encoders.pooling import POOLING_MODES, PoolingMode, pool
from ragkit.encoders.precision import (
    Precision,
    bf16_linear_weights,
    check_precision,
    compute_context,
    has_bf16_linears,
    resolve_precision,
    weight_dtype,
)
from ragkit.encoders.record import EncoderRecord
from ragkit.encoders.texts import check_texts
from ragkit.encoders.workers import EncoderPool, resolve_devices
from ragkit.errors import RagkitError
from ragkit.io import atomic_path
from ragkit.io.records import from_known_fields
from ragkit.progress import progress_bar

CONFIG_NAME = "ragkit_config.json"
FORMAT_VERSION = 2  # 2: an input format other than ragkit's (version 1 files are written otherwise)
# The input format's settings, at ragkit's defaults; a config that keeps them all is written (and
# fingerprinted) exactly as before they existed, so older encoders and indexes stay valid.
_RAGKIT_FORMAT = {"template": TEXT_SLOT, "instruction_join": "separate", "doc_max_length": None}


@dataclass
class EncoderConfig:
    """How token states become a text vector. Saved next to the weights as ragkit_config.json."""

    pooling: PoolingMode = "mean"
    bidirectional: bool = True
    max_length: int = 512  # longer texts are truncated (the instruction is kept whole)
    query_instruction: str | None = None
    document_instruction: str | None = None
    source: str = ""  # what the weights were loaded from, for index manifests
    adapters: list[str] = field(default_factory=list)  # LoRA adapters merged on top of `source`
    # The input format (ragkit/encoders/formatting.py): where the text goes in a prompt, how an
    # instruction joins it, and llm2vec's word cap; `Encoder.load(input_format="llm2vec")` sets all three.
    template: str = TEXT_SLOT
    instruction_join: InstructionJoin = "separate"
    doc_max_length: int | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise RagkitError(f"unknown pooling {self.pooling!r}: use one of {', '.join(POOLING_MODES)}")
        if self.max_length < 2:
            raise RagkitError(f"max_length must be at least 2, got {self.max_length}")
        self.template = resolve_template(self.template)
        check_join(self.instruction_join)
        if self.doc_max_length is not None and self.doc_max_length < 1:
            raise RagkitError(f"doc_max_length must be at least 1, got {self.doc_max_length}")

    @property
    def format_version(self) -> int:
        """1 unless the input format is not ragkit's: older ragkits then refuse the file instead
        of embedding in the wrong format."""
        return 1 if all(getattr(self, k) == v for k, v in _RAGKIT_FORMAT.items()) else FORMAT_VERSION

    def as_dict(self) -> dict:
        """Every setting, the input format's only where it differs from ragkit's."""
        return {k: v for k, v in asdict(self).items() if not (k in _RAGKIT_FORMAT and v == _RAGKIT_FORMAT[k])}

    @classmethod
    def read(cls, directory: Path) -> EncoderConfig | None:
        """The config saved in `directory`, or None where there is none; a newer format is a one-line
        error."""
        path = directory / CONFIG_NAME
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise RagkitError(f"{path} was written by a newer ragkit; upgrade ragkit to load it")
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderConfig:
        """The config of an `as_dict()` object (a ragkit_config.json, a manifest's encoder record):
        settings it omits keep their defaults, keys no setting has are ignored."""
        return from_known_fields(cls, data)

    def write(self, directory: Path) -> None:
        """Write ragkit_config.json into `directory`."""
        (directory / CONFIG_NAME).write_text(
            json.dumps({"format_version": self.format_version, **self.as_dict()}, indent=2) + "\n"
        )


class Encoder:
    """Texts in, L2-normalised float32 vectors out.

    Each text is tokenized with its instruction in the config's input format (ragkit's: [BOS] +
    instruction + text); all of it is attended to, and only the text's own tokens are pooled.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: EncoderConfig | None = None,
        *,
        allow_unvalidated: bool = False,
        precision: Precision = "fp32",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or EncoderConfig()
        # How `encode` computes (ragkit/encoders/precision.py), as `load` resolved it: checked here, never
        # re-decided. "int8" quantizes `model` in place.
        self.precision = check_precision(precision, self.device)
        self.devices: list[str] | None = None  # several: `encode` runs a worker process on each
        self._pool: EncoderPool | None = None
        if self.tokenizer.pad_token is None:  # decoders often have none; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        set_bidirectional(model, self.config.bidirectional, allow_unvalidated=allow_unvalidated)
        if self.precision == "int8":  # calibrated on an fp32 twin sharing model and tokenizer
            fp32 = Encoder(
                model, tokenizer, self.config, allow_unvalidated=allow_unvalidated, precision="fp32"
            )
            self.model = int8_model(fp32)

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike | EncoderConfig = DEFAULT_ENCODER,
        *,
        pooling: PoolingMode | None = None,
        bidirectional: bool | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        max_length: int | None = None,
        adapters: Sequence[str] = (),
        input_format: InputFormat | None = None,
        template: str | None = None,
        attn_implementation: str | None = None,
        allow_unvalidated: bool = False,
        devices: str | Sequence[str] | None = None,
        precision: Precision | None = None,
    ) -> Encoder:
        """Load a built-in name, Hugging Face id, local directory, .gguf file or saved ragkit encoder.

        "llm2vec-smollm2-135m" is ragkit's own adapted SmolLM2 (bidirectional + MNTP + supervised).

        An LLM2Vec-style adapter repo (e.g. "McGill-NLP/LLM2Vec-Mistral-7B-Instruct-v2-mntp") is followed
        to its base model and merged; `adapters` (e.g. the matching "...-mntp-unsup-simcse") are merged
        on top in order. Options left as None come from the saved ragkit_config.json, else the defaults.

        An `EncoderConfig` (an index manifest's, say) loads its `source` and `adapters` with all of its
        settings, instructions included: `Encoder.load(IndexManifest.read(dir).encoder_config())`.

        `input_format` "llm2vec" formats texts as the reference llm2vec does (instruction joined as
        text, its user-turn template for the base models it names, its 400-word cap), so published
        LLM2Vec checkpoints give its vectors; it is the default for them (an adapter chain without a
        ragkit_config.json). "ragkit" is ragkit's own format (ragkit/encoders/formatting.py).
        `template` (a `TEMPLATES` name or a string with a "{text}" slot) overrides the template.
        `attn_implementation`: "sdpa" (transformers' default), "eager", "flash_attention_2", ...
        `devices`: encode on several devices at once, a worker process each ("all", "cuda:0,cuda:1",
        "cpu,cpu"; ragkit/encoders/workers.py).
        `precision`: "fp32", "bf16" or "int8" (CPU only); None: the device's default
        (ragkit/encoders/precision.py, measured in benchmarks/results/cpu_precision.md). `dtype`, when
        given, sets the weights' dtype regardless.
        """
        if input_format is not None and input_format not in INPUT_FORMATS:
            raise RagkitError(
                f"unknown `input_format` {input_format!r}: use one of {', '.join(INPUT_FORMATS)}"
            )
        if template is not None:
            resolve_template(template)  # a bad template fails before the model loads
        saved: EncoderConfig | None = None
        if isinstance(name_or_path, EncoderConfig):
            saved, name_or_path = name_or_path, name_or_path.source
            adapters = [*saved.adapters, *adapters]
        if not str(name_or_path):
            raise RagkitError("name_or_path is empty: give a model name, Hub id, directory or .gguf file")
        device = resolve_device(device)
        precision = resolve_precision(precision, device)
        model, source = load_model(
            name_or_path,
            adapters=tuple(adapters),
            dtype=resolve_dtype(dtype, device) if dtype is not None else weight_dtype(precision, device),
            attn_implementation=attn_implementation,
        )
        resolved = resolve(name_or_path)  # the weights' directory or id; `source` is past any adapters
        if saved is None:
            saved = saved_config(name_or_path)
            if saved is None and source != resolved:  # an LLM2Vec adapter chain
                input_format = input_format or "llm2vec"
            saved = saved or EncoderConfig()
        overrides: dict[str, Any] = {
            "pooling": pooling,
            "bidirectional": bidirectional,
            "max_length": max_length,
        }
        config = replace(
            saved,
            source=_absolute(name_or_path),
            adapters=[_absolute(a) for a in adapters],
            **{key: value for key, value in overrides.items() if value is not None},
        )
        set_input_format(config, input_format, template, source, model.config.model_type)
        tokenizer = load_tokenizer(resolved, source)
        model = model.to(device)  # type: ignore[arg-type]  # transformers' decorated to() hides its self
        if precision == "bf16" and device.type == "cpu" and dtype is None:
            model = bf16_linear_weights(model)  # what autocast computes with, cast once
        encoder = cls(model, tokenizer, config, allow_unvalidated=allow_unvalidated, precision=precision)
        encoder.devices = resolve_devices(devices)
        return encoder

    def fingerprint(self) -> EncoderRecord:
        """What identifies the vectors this encoder produces: its source, architecture and config
        (pooling, instructions, adapters, ...), with a hash of them. Index manifests record it."""
        config = self.config.as_dict()
        # New weights in the same folder are new vectors.
        if digests := adapter_digests(self.config.source, self.config.adapters):
            config["adapter_digests"] = digests
        described = {
            "source": config.pop("source"),
            "model_type": self.model.config.model_type,
            "dim": self.dim,
            "num_hidden_layers": self.model.config.num_hidden_layers,
            "config": config,
        }
        digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
        return EncoderRecord(**described, config_hash=digest)

    @property
    def dim(self) -> int:
        """The vector size: the model's hidden size."""
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def tokenize(self, texts: Sequence[str], instruction: str | None = None) -> dict[str, torch.Tensor]:
        """One padded batch, as sentence-transformers' `tokenize`: `input_ids`, `attention_mask` and
        `prompt_lengths` (tokens before the text), ready for `embed`. `encode` and training build their
        batches from `token_ids` and `pad` instead, to sort and split by length first."""
        return self.pad(*self.token_ids(texts, instruction))

    def token_ids(
        self, texts: Sequence[str], instruction: str | None = None, max_length: int | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """Unpadded ids of each text in the encoder's input format, and how many of each row's leading
        ids (BOS, template prefix, instruction) are attended to but not pooled.

        In ragkit's format the instruction is tokenized on its own, so the number of prompt tokens is
        exact and the text's tokens do not depend on the instruction; in llm2vec's, it is joined as
        text (ragkit/encoders/formatting.py). `max_length` caps below the configured one.
        """
        c = self.config
        texts = check_texts(texts, "texts")
        return self._formatter()(texts, instruction, min(max_length or c.max_length, c.max_length))

    def _formatter(self) -> TextFormatter:
        """The input format's `TextFormatter`, made once per format (a query pays no tokenizer probes)."""
        c = self.config
        key = (c.template, c.instruction_join, c.doc_max_length, c.pooling == "eos_token")
        if getattr(self, "_formatter_key", None) != key:
            self._formatter_cached = TextFormatter(
                self.tokenizer,
                template=c.template,
                instruction_join=c.instruction_join,
                doc_max_length=c.doc_max_length,
                append_eos=c.pooling == "eos_token" and c.instruction_join == "separate",
            )
            self._formatter_key = key
        return self._formatter_cached

    def pad(self, ids: list[list[int]], prompt_lengths: int | Sequence[int]) -> dict[str, torch.Tensor]:
        """A padded batch; `prompt_lengths` has one per row (or one shared by every row)."""
        lengths = [prompt_lengths] * len(ids) if isinstance(prompt_lengths, int) else list(prompt_lengths)
        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for i, row in enumerate(ids):  # as `tokenizer.pad` does, without its per-call checks
            span = slice(width - len(row), width) if left else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, span] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "prompt_lengths": torch.tensor(lengths, dtype=torch.long),
        }

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer token states; MNTP trains on these, `embed` pools them."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        # Positions count real tokens only, so left padding does not shift the rotary positions.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with compute_context(self.precision, self.device):  # bf16 linear weights need autocast
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled float32 vectors (not normalised) for a tokenized batch, with gradients if enabled."""
        mask = batch["attention_mask"].to(self.device)
        hidden = self.hidden_states(batch["input_ids"], mask)
        return pool(hidden, mask, batch["prompt_lengths"].to(self.device), self.config.pooling)

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress: bool | None = None,
        max_length: int | None = None,
        devices: str | Sequence[str] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(len(texts), dim) float32 array in input order. Longest texts are batched together first.

        `max_length` truncates harder than the encoder's own limit (a document-length cap for eval).
        `devices` (default: the encoder's `devices`): two or more encode in a worker process each,
        started at the first such call and kept (`close()` stops them).
        `on_batch(texts, tokens)` is called after each batch (once at the end on several devices),
        for a caller's own progress display.
        """
        texts = check_texts(texts, "texts")
        if instruction is not None:
            instruction = check_texts([instruction], "instruction")[0]
        if batch_size < 1:
            raise RagkitError(f"batch_size must be at least 1, got {batch_size}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        devices = resolve_devices(devices) if devices is not None else self.devices
        if devices is not None and len(devices) > 1:
            options = {"instruction": instruction, "batch_size": batch_size, "normalize": normalize}
            pool = self._pool_on(devices)
            out = pool.encode(texts, show_progress=bool(show_progress), max_length=max_length, **options)
            if on_batch is not None:
                on_batch(
                    len(texts), sum(len(row) for row in self.token_ids(texts, instruction, max_length)[0])
                )
            return out
        ids, prompt_lengths = self.token_ids(texts, instruction, max_length)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if show_progress is None:
            show_progress = len(batches) > 8
        was_training = self.model.training  # encode mid-training (adapt) still gets exact vectors
        if was_training:  # (a walk over every module: only when there is something to switch)
            self.model.eval()
        try:
            bar = progress_bar("encoding", enabled=show_progress, transient=True)
            with torch.inference_mode(), bar:
                task = bar.add_task("encoding", total=len(texts))
                for rows in batches:
                    vectors = self.embed(self.pad([ids[i] for i in rows], [prompt_lengths[i] for i in rows]))
                    if normalize:
                        vectors = torch.nn.functional.normalize(vectors, dim=-1)
                    out[rows] = vectors.float().cpu().numpy()  # bf16 under autocast
                    bar.advance(task, len(rows))
                    if on_batch is not None:
                        on_batch(len(rows), sum(len(ids[i]) for i in rows))
        finally:
            if was_training:
                self.model.train()
        return out

    def _pool_on(self, devices: list[str]) -> EncoderPool:
        """The worker pool for `devices`, started once (with the weights as they are then)."""
        if self._pool is None or self._pool.devices != devices or not self._pool.alive:
            self.close()
            self._pool = EncoderPool(self, devices)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes of multi-device encoding, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}  # a worker gets the model, not the pool

    def encode_queries(self, queries: Sequence[str], **kwargs) -> np.ndarray:
        """Queries carry the query-side instruction (LLM2Vec: "Given a question, retrieve ...")."""
        return self.encode(
            queries, instruction=kwargs.pop("instruction", self.config.query_instruction), **kwargs
        )

    def encode_documents(self, documents: Sequence[str], **kwargs) -> np.ndarray:
        """Documents carry the document-side instruction, usually none (LLM2Vec embeds them plain, so
        one index serves every task); pass them through `document_text` when they have titles."""
        instruction = kwargs.pop("instruction", self.config.document_instruction)
        return self.encode(documents, instruction=instruction, **kwargs)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write merged weights, tokenizer and ragkit_config.json; replaces `directory` atomically.

        A PEFT model (mid-training) is saved with its adapters merged into a copy; this encoder keeps
        its own model, adapters and all.
        """
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            self.write_weights(tmp)
            (tmp / "README.md").write_text(model_card(self))
        return directory

    def export(
        self, directory: str | os.PathLike, format: str = "sentence-transformers", *, overwrite: bool = False
    ) -> Path:
        """Write a directory another library loads and gets this encoder's vectors from.

        "sentence-transformers": `SentenceTransformer(directory, trust_remote_code=True)` (see
        ragkit/encoders/export.py); the directory also loads with `Encoder.load`. An existing
        `directory` must be empty unless `overwrite`, which replaces only the files an export writes.
        """
        from ragkit.encoders.export import EXPORT_FORMATS, export_sentence_transformers

        if format not in EXPORT_FORMATS:
            raise RagkitError(f"unknown export `format` {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
        return export_sentence_transformers(self, directory, overwrite=overwrite)

    def write_weights(self, directory: Path) -> None:
        """Merged weights, tokenizer and ragkit_config.json into an existing `directory`."""
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = _merged_copy(model)
        elif has_bf16_linears(model):
            raise RagkitError(
                "this encoder's linear weights were cast to bf16 for fast encoding; to save or export "
                'it, load it with precision="fp32"'
            )
        with quiet_transformers():
            model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        replace(self.config, adapters=[]).write(directory)  # the adapters are merged into the weights

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Encoder({c.source or self.model.config.model_type!r}, dim={self.dim}, pooling={c.pooling!r}, "
            f"bidirectional={c.bidirectional}, max_length={c.max_length}, device={self.device})"
        )


def saved_config(name_or_path: str | os.PathLike) -> EncoderConfig | None:
    """The ragkit_config.json of a built-in encoder or a saved encoder directory, if it has one."""
    builtin = BUILTIN_ENCODERS.get(str(name_or_path))
    local = builtin.directory if builtin else Path(name_or_path).expanduser()
    return EncoderConfig.read(local) if local.is_dir() else None


def set_input_format(
    config: EncoderConfig, input_format: str | None, template: str | None, source: str, model_type: str
) -> None:
    """`input_format`'s three settings (llm2vec's for its checkpoints, or ragkit's), then `template`.
    `source` is the base model's name as llm2vec keys its chat-turn wrapping on (its Hub id)."""
    if input_format == "llm2vec":
        config.template = reference_template(source, model_type, config.pooling)
        config.instruction_join, config.doc_max_length = "llm2vec", LLM2VEC_DOC_MAX_LENGTH
    elif input_format == "ragkit":
        config.template, config.instruction_join, config.doc_max_length = TEXT_SLOT, "separate", None
    if template is not None:
        config.template = resolve_template(template)


def _absolute(name_or_path: str | os.PathLike) -> str:
    """Local paths made absolute, so that an index manifest can reload them from any directory."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else str(name_or_path)


def _merged_copy(peft_model) -> PreTrainedModel:
    """The base model with the adapters merged in, leaving `peft_model` as it was."""
    import copy

    return copy.deepcopy(peft_model).merge_and_unload()
