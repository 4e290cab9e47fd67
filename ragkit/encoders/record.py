"""`EncoderRecord`: what identifies the vectors an encoder makes, as `Encoder.fingerprint()` returns it
and an index manifest records it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragkit.io.records import from_known_fields


@dataclass(frozen=True)
class EncoderRecord:
    """The fingerprint of the encoder that made an index's vectors (`Encoder.fingerprint()`): its
    source, architecture and full config (instructions and adapters included), and a hash of them."""

    source: str
    model_type: str = ""
    dim: int = 0
    num_hidden_layers: int = 0
    # `EncoderConfig.as_dict()` less the source, as hashed (`EncoderConfig.from_json` reads it back),
    # with "adapter_digests" where adapters are merged.
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""

    @classmethod
    def from_json(cls, data: dict) -> EncoderRecord:
        """The record of a manifest's "encoder" object (unknown keys ignored)."""
        return from_known_fields(cls, data)
