"""The index folder's life on disk: its path, the checks before an update, the work folder of a new
build and the swap that puts a finished build in place (or finishes one a kill interrupted)."""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from ragkit.corpus import Fields
from ragkit.encoders import Encoder
from ragkit.encoders.record import EncoderRecord
from ragkit.errors import RagkitError
from ragkit.index.docstore import DOCSTORE_FILE, Docstore
from ragkit.index.manifest import MANIFEST_FILE, IndexManifest
from ragkit.index.settings import IndexSettings
from ragkit.io import leftovers, swap_into_place
from ragkit.retrieval.chunking import ChunkingConfig

PARAMS_FILE = "build-params.json"


def build_params(encoder: Encoder, chunking: ChunkingConfig, fields: Fields) -> dict:
    """What makes an index what it is, as the manifest holds it (tuples become lists): a build or
    update with other params than the existing index's is refused."""
    params = {
        "encoder": asdict(encoder.fingerprint()),
        "chunking": asdict(chunking),
        "fields": asdict(fields),
    }
    return json.loads(json.dumps(params))


def _same_chunks(manifest: IndexManifest, params: dict) -> bool:
    """Whether the index was chunked, and its fields read, as `params` say."""
    chunking, fields = ChunkingConfig.from_json(params["chunking"]), Fields.from_json(params["fields"])
    return (manifest.chunking, manifest.fields) == (chunking, fields)


def index_path(index_dir: str | Path) -> Path:
    """The index's folder; the current or parent folder itself is refused (an index is swapped into
    place as a whole, beside its siblings, so it needs a folder of its own)."""
    path = Path(index_dir)
    if path.name in ("", ".", ".."):
        raise RagkitError(
            f"`index_dir` {str(index_dir)!r} is not a folder of its own; name one, e.g. 'ragkit-index'"
        )
    return path


def previous_manifest(index_dir: Path, params: dict, rebuild: bool) -> IndexManifest | None:
    """The existing index's manifest, after checking that it was made the same way."""
    if not index_dir.exists():
        return None
    if rebuild:  # only its creation date matters, and a corrupt index is what --rebuild is for
        try:
            return IndexManifest.read(index_dir)
        except RagkitError:
            return None
    manifest = IndexManifest.read(index_dir)
    if mismatch := manifest.encoder_mismatch(index_dir, EncoderRecord.from_json(params["encoder"])):
        raise RagkitError(mismatch)
    if not _same_chunks(manifest, params):
        raise RagkitError(f"{index_dir} was built with other chunking or fields settings; use `rebuild`")
    check_parts(index_dir, manifest)
    return manifest


def check_parts(index_dir: Path, manifest: IndexManifest) -> None:
    """Before an update embeds anything: the docstore, which it cannot do without, is there. (A
    missing BM25 part or a damaged FAISS file is rebuilt by the update from the docstore.)"""
    if not (index_dir / DOCSTORE_FILE).is_file():
        raise RagkitError(
            f"{index_dir / DOCSTORE_FILE} is missing, so the index cannot be updated (its texts and vectors "
            "were there); build it again with `rebuild`"
        )


def faiss_file_whole(path: Path) -> bool:
    """Whether `path` looks like a FAISS index file: there, and opening with a FAISS type's fourcc."""
    with contextlib.suppress(OSError), path.open("rb") as f:
        return f.read(1) == b"I"  # every faiss index file starts with its type's fourcc, "I..."
    return False


def finish_interrupted_swap(index_dir: Path) -> bool:
    """Put right what a kill during a swap left (the writer lock held); True when a new build had
    finished: it was swapped in, or now goes in.

    A finished new build in `<index>.building/` that never went in goes in; an old index the exchange
    moved out (the new one is in place), or `<index>.old-PID/` copies, go away; an index a two-rename
    swap left missing comes back.
    """
    building = index_dir.with_name(f"{index_dir.name}.building")
    finished = (building / MANIFEST_FILE).is_file() and not (building / PARAMS_FILE).exists()
    swapped = finished and _updated(building) > _updated(index_dir)
    if swapped:
        swap_into_place(building, index_dir)  # the build was done; only the swap was not
    elif finished:
        shutil.rmtree(building)  # the old index, moved out by the exchange before the kill
    old = leftovers(index_dir)
    restored = bool(old) and not index_dir.exists()
    if restored:
        old[-1].rename(index_dir)  # two renames, killed between them: the old index comes back
    for path in leftovers(index_dir):
        shutil.rmtree(path, ignore_errors=True)
    return finished or (bool(old) and not restored)


def _updated(index_dir: Path) -> str:
    """When the index in `index_dir` was last written; "" for none, or a damaged one (oldest of all)."""
    try:
        return IndexManifest.read(index_dir).updated
    except RagkitError:
        return ""


def built_with(index_dir: Path, params: dict, settings: IndexSettings) -> bool:
    """Whether the index in `index_dir` was made with these params and settings: a rebuild that finds
    its own finished work in place (killed at the swap) need not embed it all again."""
    try:
        manifest = IndexManifest.read(index_dir)
    except RagkitError:
        return False
    return (
        manifest.config_hash == params["encoder"]["config_hash"]
        and _same_chunks(manifest, params)
        and IndexSettings.recorded(manifest) == settings
    )


def prepare_workdir(work: Path, params: dict) -> None:
    """Resume an interrupted new build or rebuild made the same way (the same encoder, chunking and
    fields make the same vectors), else start afresh."""
    params_file = work / PARAMS_FILE
    if params_file.is_file() and json.loads(params_file.read_text()) == params:
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    params_file.write_text(json.dumps(params))


def file_hashes(index_dir: Path, generation: int) -> dict[str, str]:
    """What generation `generation` of the index holds: {path: content hash}."""
    store = Docstore(index_dir / DOCSTORE_FILE, generation=generation, readonly=True)
    try:
        return store.file_hashes()
    finally:
        store.close()
