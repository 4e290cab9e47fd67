"""manifest.json: what an index directory holds and how it was made."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from ragkit.encoders import Encoder
from ragkit.errors import RagkitError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.faiss"


def encoder_fingerprint(encoder: Encoder) -> dict:
    """Identifies the vectors an encoder produces: its source, architecture and pooling settings."""
    config = asdict(encoder.config)
    described = {
        "source": config.pop("source"),
        "model_type": encoder.model.config.model_type,
        "dim": encoder.dim,
        "num_hidden_layers": encoder.model.config.num_hidden_layers,
        "config": config,
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    return {**described, "config_hash": digest}


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST_FILE
    if not path.is_file():
        raise RagkitError(
            f"no index at {index_dir}: build one with `ragkit index CORPUS --index {index_dir}`"
        )
    try:
        manifest = json.loads(path.read_text())
        version = manifest["format_version"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise RagkitError(f"{path} is corrupt; rebuild the index with `ragkit index CORPUS --rebuild`") from e
    if version != FORMAT_VERSION:
        action = "upgrade ragkit" if version > FORMAT_VERSION else "rebuild it with --rebuild"
        raise RagkitError(
            f"index format {version} at {index_dir} is not this ragkit's ({FORMAT_VERSION}); {action}"
        )
    return manifest


def write_manifest(index_dir: Path, manifest: dict) -> None:
    (Path(index_dir) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
