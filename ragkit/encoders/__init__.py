"""Decoder LLMs as text encoders: bidirectional attention, pooling, loading."""

from ragkit.encoders.bidirectional import VALIDATED_MODEL_TYPES, set_bidirectional
from ragkit.encoders.encoder import Encoder, EncoderConfig
from ragkit.encoders.loading import BUILTIN_ENCODERS, BUILTIN_MODELS
from ragkit.encoders.pooling import POOLING_MODES, pool

__all__ = [
    "BUILTIN_ENCODERS",
    "BUILTIN_MODELS",
    "POOLING_MODES",
    "VALIDATED_MODEL_TYPES",
    "Encoder",
    "EncoderConfig",
    "pool",
    "set_bidirectional",
]
