"""Training pairs for a corpus that has no labels: synthetic queries for its own passages.

For each sampled passage an instruction-tuned LLM writes a query (InPars' few-shot prompt,
Bonifacio et al. 2022); a query is kept only if BM25 over the whole corpus ranks its passage in the
top `round_trip_k` (round-trip consistency, Alberti et al. 2019), and it gets hard negatives mined
with the encoder being adapted, past its top ranks (likely unlabeled positives). The pairs are a
supervised-contrastive data file like any other (`{"query", "positive", "negative", "instruction"}`
rows), so the stage that trains on them is the supervised one.

The queries are written by ragkit/querygen/, which caches them per passage: an interrupted run, or
a rerun with other training settings, reuses every query already written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragkit.corpus import Fields, ReadStats, list_files, read_documents
from ragkit.encoders.encoder import Encoder
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError
from ragkit.io import atomic_write_text
from ragkit.querygen import GenerationSettings, generate_queries, usable_query
from ragkit.retrieval.chunking import ChunkingConfig, chunk_document
from ragkit.retrieval.lexical import LexicalIndex


def corpus_passages(source: str, tokenizer, chunking: ChunkingConfig | None = None) -> list[str]:
    """Every passage of a corpus file or folder, as an index built from it holds them (document
    title above each chunk), without duplicates, in reading order."""
    stats = ReadStats()
    chunking = chunking or ChunkingConfig()
    passages = [
        chunk.embedding_text()
        for file in list_files(Path(source))
        for doc in read_documents(file, Fields(), stats)
        for chunk in chunk_document(doc, tokenizer, chunking)
    ]
    passages = list(dict.fromkeys(p for p in passages if p.strip()))
    if not passages:
        raise RagkitError(f"{source}: no documents to write queries for; give a corpus folder or file")
    return passages


def round_trip(queries: Sequence[str], sources: Sequence[int], passages: Sequence[str], k: int) -> list[bool]:
    """For each query, whether BM25 over all `passages` ranks its source passage in the top k (the
    same BM25 as an index's and `ragkit eval`'s, ragkit/retrieval/lexical.py)."""
    found = LexicalIndex.build(passages).search(queries, k)
    return [source in hits for hits, source in zip(found, sources, strict=True)]


def mine_negatives(
    encoder: Encoder,
    queries: Sequence[str],
    sources: Sequence[int],
    passages: Sequence[str],
    *,
    instruction: str,
    skip: int,
    depth: int,
    count: int,
    seed: int,
    show_progress: bool = True,
) -> list[list[int]]:
    """`count` passages per query, drawn from the encoder's ranks skip+1 .. depth (the source left out)."""
    documents = encoder.encode(passages, show_progress=show_progress)
    vectors = encoder.encode(queries, instruction=instruction, show_progress=show_progress)
    rng = np.random.default_rng(seed)
    negatives = []
    for vector, source in zip(vectors, sources, strict=True):
        scores = documents @ vector
        top = np.argsort(-scores, kind="stable")[: depth + 1]
        window = [int(i) for i in top if i != source][skip:depth]
        negatives.append([int(i) for i in rng.permutation(window)[:count]])
    return negatives


def synthetic_pairs(
    encoder: Encoder,
    corpus: str,
    out: Path,
    *,
    settings: GenerationSettings,
    passages: int,
    instruction: str,
    separator: str,
    round_trip_k: int,
    negative_skip: int,
    negative_depth: int,
    negatives: int,
    seed: int,
    show_progress: bool = True,
) -> dict[str, int]:
    """Write (query, passage, negatives) rows for `corpus` to `out`; return counts for the summary."""
    every = corpus_passages(corpus, encoder.tokenizer)
    rng = np.random.default_rng(seed)
    sample = sorted(rng.permutation(len(every))[:passages].tolist())
    queries = generate_queries(
        [every[i] for i in sample], settings, device=encoder.device, show_progress=show_progress
    )
    usable = [(q, i) for q, i in zip(queries, sample, strict=True) if usable_query(q)]
    kept_mask = (
        round_trip([q for q, _ in usable], [i for _, i in usable], every, round_trip_k) if usable else []
    )
    kept = [pair for pair, ok in zip(usable, kept_mask, strict=True) if ok]
    if not kept:
        raise RagkitError(
            f"{corpus}: none of the {len(queries)} written queries passed the round trip; "
            "give more passages or a larger `round_trip_k`"
        )
    mined = mine_negatives(
        encoder,
        [q for q, _ in kept],
        [i for _, i in kept],
        every,
        instruction=query_prompt(instruction, separator),
        skip=negative_skip,
        depth=negative_depth,
        count=negatives,
        seed=seed,
        show_progress=show_progress,
    )
    rows = [
        {"query": q, "positive": every[i], "negative": [every[n] for n in hard], "instruction": instruction}
        for (q, i), hard in zip(kept, mined, strict=True)
    ]
    atomic_write_text(out, "".join(json.dumps(row) + "\n" for row in rows))
    return {"passages": len(every), "written": len(queries), "kept": len(rows)}


def prepare_synthetic(encoder: Encoder, config, stage_dir: Path, show_progress: bool = True):
    """The synthetic stage's data step: pairs for `config.data` (a corpus) in `stage_dir`, written once
    (a resumed run reuses them), and the config that trains on them. With a `teacher` (GPL), the
    teacher's scores of each query's candidates, mined from the whole corpus, are prepared as the
    distill stage prepares its data, and the config returned is that stage's."""
    import dataclasses

    from ragkit.adapt.distill import prepare_distill
    from ragkit.adapt.trainer import autocast

    pairs = stage_dir / "pairs.jsonl"
    if not pairs.is_file():
        with autocast(config, encoder.device):  # the training's precision: mining only ranks
            counts = synthetic_pairs(
                encoder,
                config.data,
                pairs,
                settings=GenerationSettings(
                    config.generator,
                    config.passage_words,
                    config.max_new_tokens,
                    config.generation_batch_size,
                    config.generator_dtype,
                ),
                passages=config.passages,
                instruction=config.instruction,
                separator=config.instruction_separator,
                round_trip_k=config.round_trip_k,
                negative_skip=config.negative_skip,
                negative_depth=config.negative_depth,
                negatives=config.negatives,
                seed=config.seed,
                show_progress=show_progress,
            )
        atomic_write_text(stage_dir / "pairs.json", json.dumps(counts, indent=2) + "\n")
    if config.teacher is None:
        return dataclasses.replace(config, data=str(pairs))
    passages = stage_dir / "passages.jsonl"  # every passage of the corpus: candidates to mine
    if not passages.is_file():
        every = corpus_passages(config.data, encoder.tokenizer)
        atomic_write_text(passages, "".join(json.dumps({"text": p}) + "\n" for p in every))
    distill = config.labelled_by_teacher(str(pairs), str(passages))
    return prepare_distill(encoder, distill, stage_dir, show_progress)
