"""manifest.json as typed records: read from the JSON objects earlier ragkits wrote, written back the same."""

from __future__ import annotations

import json

from ragkit.corpus import Fields
from ragkit.index.docstore import Counts
from ragkit.index.manifest import EncoderRecord, IndexLayout, IndexManifest, TrainedState
from ragkit.index.transform import TransformRecord
from ragkit.retrieval.chunking import ChunkingConfig

# A manifest as ragkit wrote it before its parts were records (session 8's speed index, shortened).
WRITTEN_BEFORE = {
    "encoder": {
        "source": "llm2vec-smollm2-135m",
        "model_type": "llama",
        "dim": 576,
        "num_hidden_layers": 30,
        "config": {"pooling": "mean", "query_instruction": "Given a query, retrieve documents: "},
        "config_hash": "4f61fe0af0694f4f",
    },
    "chunking": {"chunk_size": 256, "overlap": 32},
    "fields": {"text": "text", "title": "title", "id": ["_id", "id", "doc_id"]},
    "corpus": "synthetic",
    "created": "2026-12-03T10:25:15+00:00",
    "updated": "2026-12-03T10:25:15+00:00",
    "transform": {"kind": "pca", "dim_in": 576, "dim_out": 64, "whiten": False, "file": "transform-3.pca"},
    "index": {"spec": "ivf", "factory": "IVF1264,Flat", "metric": "inner_product", "on_disk": True},
    "search_params": {"nprobe": 16},
    "lexical": {"kind": "bm25s", "method": "lucene", "k1": 1.5, "b": 0.75},
    "counts": {"files": 100, "documents": 100000, "chunks": 100000, "vectors": 100000},
    "bytes_per_vector": 2304.1,
    "faiss": "faiss 1.15.1",
    "generation": 4,
    "trained": {"generation": 3, "vectors": 100000},
    "calibration": {},
    "precision": "bf16",
    "format_version": 2,
}


def test_a_manifest_written_before_reads_into_records_and_writes_back_the_same(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(WRITTEN_BEFORE))
    manifest = IndexManifest.read(tmp_path)
    assert manifest.encoder == EncoderRecord(
        "llm2vec-smollm2-135m", "llama", 576, 30, WRITTEN_BEFORE["encoder"]["config"], "4f61fe0af0694f4f"
    )
    assert manifest.config_hash == "4f61fe0af0694f4f"
    assert manifest.encoder_config().query_instruction.startswith("Given a query")
    assert manifest.transform == TransformRecord("pca", 576, 64, whiten=False, file="transform-3.pca")
    assert manifest.trained == TrainedState(generation=3, vectors=100000)
    assert manifest.counts == Counts(files=100, documents=100000, chunks=100000, vectors=100000)
    assert manifest.chunking == ChunkingConfig(256, 32) and manifest.fields == Fields()
    assert manifest.calibration is None  # {}: no calibration, the fallback searches
    layout = manifest.index
    assert layout == IndexLayout(factory="IVF1264,Flat", spec="ivf", on_disk=True)
    assert layout.trainable and layout.removable and layout.ivf_lists == 1264
    manifest.write(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written == {k: v for k, v in WRITTEN_BEFORE.items() if k != "lexical"}  # a dead field dropped


def test_the_factory_string_says_what_the_index_can_do():
    assert not IndexLayout(factory="Flat").trainable and IndexLayout(factory="Flat").ivf_lists is None
    assert IndexLayout(factory="IVF256,PQ16x8").trainable
    assert IndexLayout(factory="SQ8").trainable
    hnsw = IndexLayout(factory="HNSW32")
    assert not hnsw.trainable and not hnsw.removable


def test_an_index_without_a_trained_record_or_pca_file_reads_with_defaults(tmp_path):
    older = {**WRITTEN_BEFORE, "trained": {}, "transform": {"kind": "none", "dim_in": 576, "dim_out": 576}}
    (tmp_path / "manifest.json").write_text(json.dumps(older))
    manifest = IndexManifest.read(tmp_path)
    assert manifest.trained == TrainedState() and manifest.transform.file is None
    older["counts"] = {"files": 2, "documents": 5, "chunks": 7}  # before ragkit recorded its vectors
    (tmp_path / "manifest.json").write_text(json.dumps(older))
    assert IndexManifest.read(tmp_path).counts == Counts(files=2, documents=5, chunks=7, vectors=7)
    assert manifest.transform.whiten is False
    assert "file" not in manifest.to_json()["transform"]
