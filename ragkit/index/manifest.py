"""manifest.json: what an index directory holds and how it was made, as one typed record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit.corpus import Fields
from ragkit.device import resolve_device
from ragkit.encoders import Encoder, EncoderConfig
from ragkit.encoders.precision import Precision, matching_precision
from ragkit.encoders.record import EncoderRecord
from ragkit.errors import RagkitError
from ragkit.index.docstore import Counts
from ragkit.index.faiss_index import IndexLayout
from ragkit.index.search_setting import Calibration
from ragkit.index.transform import TransformRecord
from ragkit.io import atomic_write_text
from ragkit.io.records import from_known_fields
from ragkit.retrieval.chunking import ChunkingConfig

FORMAT_VERSION = 2  # 2: versioned docstore rows, chunk ids as FAISS ids, files named by generation
MANIFEST_FILE = "manifest.json"


def index_file(generation: int) -> str:
    """The FAISS index of one generation (an update writes the next beside it)."""
    return f"index-{generation}.faiss"


def lexical_dir(generation: int) -> str:
    """The BM25 part of one generation."""
    return f"bm25-{generation}"


@dataclass(frozen=True)
class TrainedState:
    """When the FAISS index and the PCA were last trained: at which generation, on how many vectors."""

    generation: int = 0
    vectors: int = 0

    @classmethod
    def from_json(cls, data: dict) -> TrainedState:
        """The record of a manifest's "trained" object ({} in indexes that recorded none)."""
        return from_known_fields(cls, data)


@dataclass
class IndexManifest:
    """Everything `Retriever.load` and an incremental `ragkit index` need to know about an index.

    The parts are typed records (`EncoderRecord`, `ChunkingConfig`, `Fields`, `TransformRecord`,
    `IndexLayout`, `TrainedState`, `Counts`, `Calibration`);
    they are written as JSON objects, and read from them (`read` or the constructor).
    """

    encoder: EncoderRecord
    chunking: ChunkingConfig
    fields: Fields = field(default_factory=Fields)
    corpus: str = ""
    created: str = ""
    updated: str = ""
    transform: TransformRecord = field(default_factory=TransformRecord)
    index: IndexLayout = field(default_factory=IndexLayout)
    search_params: dict[str, Any] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    bytes_per_vector: float = 0.0
    faiss: str = ""  # which faiss build wrote it
    # Updates write generation + 1 beside this one; the manifest naming it is the commit.
    generation: int = 1
    # When the FAISS index and the PCA were last trained: {"generation", "vectors"}; an update
    # retrains (and says so) once the corpus has grown or shrunk `RETRAIN_FACTOR` times since.
    trained: TrainedState = field(default_factory=TrainedState)
    # The search setting this corpus calibrated itself to and its evidence; None ({} in the file): none
    # (too few sentences, or built before ragkit calibrated), searches use the fallback.
    calibration: Calibration | None = None
    # The precision the documents were encoded in: queries are encoded the same way where the device
    # computes it ("" in indexes built before ragkit recorded it).
    precision: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:  # the JSON objects of a manifest file become their records
        for name, record in (
            ("encoder", EncoderRecord),
            ("chunking", ChunkingConfig),
            ("fields", Fields),
            ("transform", TransformRecord),
            ("index", IndexLayout),
            ("trained", TrainedState),
            ("counts", Counts),
        ):
            if isinstance(value := getattr(self, name), dict):
                setattr(self, name, record.from_json(value))
        if isinstance(self.calibration, dict):
            self.calibration = Calibration.from_json(self.calibration) if self.calibration else None

    @property
    def index_path(self) -> str:
        """The FAISS file of this generation, relative to the index folder."""
        return index_file(self.generation)

    @property
    def lexical_path(self) -> str:
        """The BM25 folder of this generation, relative to the index folder."""
        return lexical_dir(self.generation)

    @property
    def config_hash(self) -> str:
        """The hash of the encoder that made the vectors: queries must come from the same."""
        return self.encoder.config_hash

    def encoder_mismatch(
        self, index_dir: Path, fingerprint: EncoderRecord, *, reading: bool = False
    ) -> str | None:
        """Why an encoder with this fingerprint cannot add to (or, `reading`, query) this index, or None
        if it can. The same name with another hash is an encoder that changed since (a new built-in
        release, retrained weights): the index has to be rebuilt, since no encoder makes its vectors now."""
        was = self.encoder
        if fingerprint.config_hash == was.config_hash:
            return None
        if fingerprint.source == was.source:
            return (
                f"{index_dir} was built with another version of encoder {was.source!r} (its weights or "
                f"config differ: {was.config_hash}, now {fingerprint.config_hash}); its vectors do not "
                "match this one's, so build it again"
                + (" (ragkit index CORPUS --index DIR --rebuild)" if reading else " with `rebuild`")
            )
        fix = (
            "search it with that encoder (the index's own is loaded when none is given)"
            if reading
            else "use that encoder, another `index_dir`, or `rebuild`"
        )
        return (
            f"{index_dir} was built with encoder {was.source!r} ({was.config_hash}), not "
            f"{fingerprint.source!r} ({fingerprint.config_hash}); {fix}"
        )

    def encoder_config(self) -> EncoderConfig:
        """The config to load the index's encoder with: `Encoder.load(manifest.encoder_config())`."""
        return EncoderConfig.from_json({**self.encoder.config, "source": self.encoder.source})

    def load_encoder(
        self, *, device: str | None = None, precision: Precision | None = None, **options: Any
    ) -> Encoder:
        """The encoder that made the index's vectors, run on `device` (`options`: `Encoder.load`'s
        `dtype`, `attn_implementation`, `allow_unvalidated`). `precision` defaults to the one the
        documents were encoded in, where `device` computes it natively (`matching_precision`): the
        one place an index's encoder is loaded, for queries (`Retriever`) and updates (`Index`)."""
        if precision is None:
            precision = matching_precision(self.precision, resolve_device(device))
        return Encoder.load(self.encoder_config(), device=device, precision=precision, **options)

    @classmethod
    def read(cls, index_dir: str | Path) -> IndexManifest:
        """The manifest of the index in `index_dir`; none, a damaged one or one in another format
        version is a one-line error."""
        path = Path(index_dir) / MANIFEST_FILE
        if not path.is_file():
            raise RagkitError(
                f"no index at {index_dir}: build one there first, or point `index_dir` at an existing index"
            )
        try:
            data = json.loads(path.read_text())
            version = data["format_version"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise RagkitError(f"{path} is corrupt; build the index again with `rebuild`") from e
        if version != FORMAT_VERSION:
            action = "upgrade ragkit" if version > FORMAT_VERSION else "rebuild it with `rebuild`"
            raise RagkitError(
                f"index format {version} at {index_dir} is not this ragkit's ({FORMAT_VERSION}); {action}"
            )
        try:
            return from_known_fields(cls, data)
        except TypeError as e:  # a required field missing
            raise RagkitError(f"{path} is incomplete; rebuild the index with `rebuild`") from e

    def write(self, index_dir: str | Path) -> None:
        """Write the manifest atomically: writing it is what commits a generation."""
        atomic_write_text(Path(index_dir) / MANIFEST_FILE, json.dumps(self.to_json(), indent=2) + "\n")

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object manifest.json holds (a PCA-less transform names no file)."""
        data = asdict(self)
        data["calibration"] = self.calibration.to_json() if self.calibration else {}
        if data["transform"]["file"] is None:
            del data["transform"]["file"]
        return data
