"""manifest.json: what an index directory holds and how it was made, as one typed record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ragkit.encoders import EncoderConfig
from ragkit.errors import RagkitError
from ragkit.index.calibration import Calibration
from ragkit.io import atomic_write_text

FORMAT_VERSION = 2  # 2: versioned docstore rows, chunk ids as FAISS ids, files named by generation
MANIFEST_FILE = "manifest.json"


def index_file(generation: int) -> str:
    """The FAISS index of one generation (an update writes the next beside it)."""
    return f"index-{generation}.faiss"


def lexical_dir(generation: int) -> str:
    """The BM25 part of one generation."""
    return f"bm25-{generation}"


@dataclass
class IndexManifest:
    """Everything `Retriever.load` and an incremental `ragkit index` need to know about an index.

    `encoder` is the encoder's fingerprint (`Encoder.fingerprint()`): its source, architecture and
    full config (instructions and adapters included), and a hash of them.
    """

    encoder: dict[str, Any]
    chunking: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)
    corpus: str = ""
    created: str = ""
    updated: str = ""
    transform: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    index: dict[str, Any] = field(default_factory=dict)  # spec, faiss factory string, metric
    search_params: dict[str, Any] = field(default_factory=dict)
    lexical: dict[str, Any] = field(default_factory=dict)  # the BM25 part's settings; {}: none (older)
    counts: dict[str, int] = field(default_factory=dict)
    bytes_per_vector: float = 0.0
    faiss: str = ""  # which faiss build wrote it
    # Updates write generation + 1 beside this one; the manifest naming it is the commit.
    generation: int = 1
    # When the FAISS index and the PCA were last trained: {"generation", "vectors"}; an update
    # retrains (and says so) once the corpus has grown or shrunk `RETRAIN_FACTOR` times since.
    trained: dict[str, int] = field(default_factory=dict)
    # The search setting this corpus calibrated itself to and its evidence (`Calibration.to_json`);
    # {}: none (too few sentences, or built before ragkit calibrated), searches use the fallback.
    calibration: dict[str, Any] = field(default_factory=dict)
    # The precision the documents were encoded in: queries are encoded the same way where the device
    # computes it ("" in indexes built before ragkit recorded it).
    precision: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def index_path(self) -> str:
        return index_file(self.generation)

    @property
    def lexical_path(self) -> str:
        return lexical_dir(self.generation)

    @property
    def config_hash(self) -> str:
        return self.encoder["config_hash"]

    def search_calibration(self) -> Calibration | None:
        """The calibrated default search, if this index has one."""
        return Calibration.from_json(self.calibration) if self.calibration else None

    def encoder_config(self) -> EncoderConfig:
        """The config to load the index's encoder with: `Encoder.load(manifest.encoder_config())`."""
        recorded = self.encoder["config"]
        known = {f.name for f in fields(EncoderConfig)}
        return EncoderConfig(
            source=self.encoder["source"], **{k: v for k, v in recorded.items() if k in known}
        )

    @classmethod
    def read(cls, index_dir: str | Path) -> IndexManifest:
        path = Path(index_dir) / MANIFEST_FILE
        if not path.is_file():
            raise RagkitError(
                f"no index at {index_dir}: build one with `ragkit index CORPUS --index {index_dir}`"
            )
        try:
            data = json.loads(path.read_text())
            version = data["format_version"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise RagkitError(
                f"{path} is corrupt; rebuild the index with `ragkit index CORPUS --rebuild`"
            ) from e
        if version != FORMAT_VERSION:
            action = "upgrade ragkit" if version > FORMAT_VERSION else "rebuild it with `rebuild`"
            raise RagkitError(
                f"index format {version} at {index_dir} is not this ragkit's ({FORMAT_VERSION}); {action}"
            )
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except TypeError as e:  # a required field missing
            raise RagkitError(f"{path} is incomplete; rebuild the index with `rebuild`") from e

    def write(self, index_dir: str | Path) -> None:
        atomic_write_text(Path(index_dir) / MANIFEST_FILE, json.dumps(asdict(self), indent=2) + "\n")
