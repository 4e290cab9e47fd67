"""`Index.build(..., ray=...)`: a local Ray instance (2 encoder actors on CPU) gives the local build."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_encoder

from ragkit import Encoder
from ragkit.index import ChunkingConfig, Index, Retriever, ray_embed

ray = pytest.importorskip("ray")
CHUNKING = ChunkingConfig(chunk_size=48, overlap=8)


@pytest.fixture(scope="module")
def local_ray():
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (RuntimeError, OSError, ConnectionError) as error:  # the machine cannot run Ray at all
        pytest.skip(f"a local Ray instance does not start here: {error}")
    yield "auto"  # what `--ray auto` finds: the instance started here
    ray.shutdown()


def snapshot(index_dir, encoder):
    retriever = Retriever.load(index_dir, encoder=encoder)
    ids, texts = retriever.store.texts()
    doc_of = retriever.store.doc_ids()
    chunks = sorted((doc_of[i], t) for i, t in zip(ids, texts, strict=True))
    searches = [
        [(h.path, h.doc_id, h.start, round(h.score, 4)) for h in hits]
        # Dense: BM25's tied scores rank by chunk id, which Ray assigns in another order.
        for hits in retriever.search(["wing", "heat transfer", "boundary layer"], k=5, mode="dense")
    ]
    return retriever.manifest, chunks, searches


def test_a_ray_build_gives_the_local_build(cranfield, tmp_path, local_ray, monkeypatch):
    docs, _ = cranfield
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for d in docs[:30]:
        (corpus / f"{d['_id']}.txt").write_text(d["text"])
    # One file of 20 documents, embedded in three parts (8 + 8 + 4) that any actor may take.
    monkeypatch.setattr(ray_embed, "DOCUMENTS_PER_PART", 8)
    lines = [json.dumps({"_id": f"j{d['_id']}", "title": d["title"], "text": d["text"]}) for d in docs[30:50]]
    (corpus / "more.jsonl").write_text("\n".join(lines) + "\n")
    (corpus / "empty.txt").write_text("")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    encoder = Encoder.load(tiny_encoder().save(tmp_path / "tiny"))  # actors load it by path

    local = Index.build(corpus, encoder, tmp_path / "local", chunking=CHUNKING, show_progress=False)
    on_ray = Index.build(
        corpus, encoder, tmp_path / "ray", chunking=CHUNKING, show_progress=False, ray=local_ray, ray_actors=2
    )
    assert on_ray.counts == local.counts and on_ray.chunks_embedded == local.chunks_embedded
    assert on_ray.reading == local.reading
    a, b = snapshot(tmp_path / "local", encoder), snapshot(tmp_path / "ray", encoder)
    assert a[0].encoder == b[0].encoder and a[0].counts == b[0].counts
    assert a[1] == b[1] and a[2] == b[2]
    assert not (tmp_path / "ray.ray-shards").exists()

    (corpus / "1.txt").write_text("a changed document about supersonic flow over a flat plate")
    update = Index.build(
        corpus, encoder, tmp_path / "ray", chunking=CHUNKING, show_progress=False, ray=local_ray
    )
    assert update.in_place and update.chunks_embedded == 1 and update.updated == 1
