"""Step 1 of LLM2Vec: let every token attend to every other token (padding stays masked).

In transformers 5.x, `config.is_causal = False` makes the mask builders return their bidirectional
versions (sliding windows kept, now on both sides) and is passed to the attention kernels as
`is_causal`. Flipping only the attention modules' `is_causal` attribute is not enough: with
padding the mask builders still return a causal mask, and outputs then depend on whether the batch
was padded.
"""

from __future__ import annotations

from transformers import PreTrainedModel

from ragkit.errors import RagkitError

# Model types whose bidirectional mode is covered by tests/encoders/test_bidirectional.py.
VALIDATED_MODEL_TYPES: frozenset[str] = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"}
)


def set_bidirectional(
    model: PreTrainedModel, enabled: bool = True, *, allow_unvalidated: bool = False
) -> None:
    """Switch `model` between bidirectional (encoder) and causal (decoder) attention, in place."""
    model_type = model.config.model_type
    if enabled and model_type not in VALIDATED_MODEL_TYPES and not allow_unvalidated:
        raise RagkitError(
            f"bidirectional attention is not validated for model type {model_type!r} "
            f"(validated: {', '.join(sorted(VALIDATED_MODEL_TYPES))}); "
            "pass `allow_unvalidated` to try it anyway"
        )
    model.config.is_causal = not enabled
