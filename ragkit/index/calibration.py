"""The search setting that suits one corpus, chosen without labels from queries the corpus makes itself.

Dense search and BM25 win on different corpora, and so do the fusion weights between them
(benchmarks/results/fusion.md): no single setting is best everywhere. So each index chooses its own,
on pseudo-queries whose one relevant passage is known, made one of two ways:

- "generated" (the default): an instruction-tuned LLM (SmolLM2-135M-Instruct, InPars' prompt;
  ragkit/querygen/) writes a question for each of `N_QUERIES` sampled chunks, and the chunk is its
  passage. No round-trip filter: BM25 choosing which questions count would bias the choice towards BM25.
- "inverse-cloze" (Lee et al., 2019, "Latent Retrieval for Weakly Supervised Open Domain QA"): a
  sentence drawn from a chunk is the query, and that chunk *without the sentence* is its passage, so
  BM25 cannot win by matching the sentence word for word. No generator: one encoder pass.

Every candidate setting ranks a pool of chunks, and the setting whose rankings put the passages
highest (nDCG@10) becomes the index's default search; a fusion only where it beats the better of dense
and BM25 alone by more than noise (`MIN_Z`). benchmarks/results/calibration_queries.md measures both
ways on real queries: generated questions choose better on the dev splits (mean nDCG@10 0.936 vs
0.931) and never fall below BM25 on the six folders (inverse-cloze: by up to 0.007), for a decoder
generation per question at build time (cached per passage, so an update pays only for new chunks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ragkit.corpus import document_text
from ragkit.encoders import Encoder
from ragkit.errors import RagkitError
from ragkit.index.docstore import Docstore
from ragkit.index.search_setting import GENERATED, INVERSE_CLOZE, Calibration, SearchSetting
from ragkit.index.transform import Transform
from ragkit.querygen import GenerationSettings, generate_queries, usable_query
from ragkit.retrieval.fusion import FUSION_METHODS, HYBRID_CANDIDATES
from ragkit.retrieval.lexical import LexicalIndex
from ragkit.retrieval.sentences import split_sentences

N_QUERIES = 200  # pseudo-queries per calibration
POOL = 5000  # chunks they are ranked among (the sources and a seeded sample of the rest)
MIN_QUERIES = 30  # fewer sentences to draw from: too noisy to choose, keep the global default
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_WORDS, MAX_WORDS = 5, 40  # a sentence shorter is rarely a question's worth; longer, rarely one
WINDOW = 12  # words per pseudo-sentence of a text without sentence punctuation
QUERY_METHODS: tuple[str, ...] = (GENERATED, INVERSE_CLOZE)
DEFAULT_QUERY_METHOD = GENERATED  # benchmarks/results/calibration_queries.md
# A fusion is chosen over the better of dense and BM25 alone only when its pseudo-query nDCG@10 beats
# that by more than MIN_Z standard errors of the paired difference (one-sided 95%): where the two are
# within noise of each other the simpler setting is the safer one.
MIN_Z = 1.645

CANDIDATES: tuple[SearchSetting, ...] = (
    SearchSetting("dense"),
    SearchSetting("bm25"),
    *(SearchSetting("hybrid", m, w) for m in FUSION_METHODS for w in WEIGHTS),
)


@dataclass(frozen=True)
class PseudoQuery:
    """An inverse-cloze query: a sentence of a chunk, and the rest of the chunk as the passage it should
    find."""

    source: int  # position of the chunk in the texts given
    query: str  # a sentence of it
    context: str  # the chunk without that sentence: the passage the query should find


def pseudo_queries(texts: Sequence[str], n: int = N_QUERIES, seed: int = 0) -> list[PseudoQuery]:
    """Up to `n` inverse-cloze queries, each from a different text (a seeded sample of those that
    have a sentence of `MIN_WORDS`-`MAX_WORDS` words and something left without it)."""
    rng = np.random.default_rng(seed)
    out: list[PseudoQuery] = []
    for i in rng.permutation(len(texts)):
        sentences = _sentences(texts[i])
        usable = [s for s in sentences if MIN_WORDS <= len(s.split()) <= MAX_WORDS]
        if len(sentences) < 2 or not usable:
            continue
        sentence = usable[int(rng.integers(len(usable)))]
        context = " ".join(s for s in sentences if s is not sentence).strip()
        if len(context.split()) < MIN_WORDS:
            continue
        out.append(PseudoQuery(int(i), sentence.strip(), context))
        if len(out) == n:
            break
    return out


def _sentences(text: str) -> list[str]:
    """A text's sentences; a text without sentence punctuation (lowercased, stop-worded, a list)
    is cut into runs of `WINDOW` words instead, so that it still yields pseudo-queries."""
    sentences = split_sentences(text)
    words = text.split()
    if len(sentences) < 2 and len(words) >= 2 * WINDOW:
        sentences = [" ".join(words[i : i + WINDOW]) for i in range(0, len(words), WINDOW)]
    return sentences


def written_queries(
    texts: Sequence[str],
    n: int = N_QUERIES,
    seed: int = 0,
    *,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> list[PseudoQuery]:
    """A question the generator writes for each of up to `n` seeded texts, the whole text its
    passage. The texts sampled are those inverse-cloze would draw from, as measured; none (and no
    generator loaded) when fewer than `MIN_QUERIES` could be drawn. Questions of one word, or a
    prompt example copied back, are left out."""
    sources = [q.source for q in pseudo_queries(texts, n, seed)]
    if len(sources) < MIN_QUERIES:
        return []
    device = torch.device(device)
    settings = GenerationSettings.native(device)
    written = generate_queries(
        [texts[i] for i in sources], settings, device=device, show_progress=show_progress
    )
    return [PseudoQuery(i, q, texts[i]) for i, q in zip(sources, written, strict=True) if usable_query(q)]


def check_query_method(method: str) -> str:
    """`method` if ragkit makes pseudo-queries that way, else a one-line error."""
    if method not in QUERY_METHODS:
        raise RagkitError(f"unknown `calibration_queries` {method!r}: use one of {', '.join(QUERY_METHODS)}")
    return method


def calibrate(
    texts: Sequence[str],
    vectors: np.ndarray,
    embed_queries: Callable[[list[str]], np.ndarray],
    embed_documents: Callable[[list[str]], np.ndarray],
    *,
    n_queries: int = N_QUERIES,
    seed: int = 0,
    queries: Sequence[PseudoQuery] | None = None,
    method: str = INVERSE_CLOZE,
) -> Calibration | None:
    """Choose among `CANDIDATES` for a pool of chunks: `texts` (as BM25 ranks them) and their
    `vectors` (as the FAISS index holds them, normalised, any PCA applied). `embed_queries` and
    `embed_documents` must give vectors the same way. None when the pool has fewer than
    `MIN_QUERIES` usable sentences: too few to choose on. `queries`: pseudo-queries made another
    way (`method` names it) instead of the inverse-cloze ones.
    """
    if len(texts) != len(vectors):
        raise RagkitError(f"{len(texts)} texts but {len(vectors)} vectors to calibrate on")
    queries = list(queries) if queries is not None else pseudo_queries(texts, n_queries, seed)
    if len(queries) < MIN_QUERIES:
        return None
    pool_texts, pool_vectors = list(texts), np.array(vectors, dtype=np.float32, copy=True)
    sources = [q.source for q in queries]
    for q in queries:
        pool_texts[q.source] = q.context
    changed = [q for q in queries if q.context != texts[q.source]]
    if changed:
        pool_vectors[[q.source for q in changed]] = embed_documents([q.context for q in changed])
    query_vectors = embed_queries([q.query for q in queries])

    fetch = min(HYBRID_CANDIDATES, len(pool_texts))
    dense = _dense_rankings(query_vectors, pool_vectors, fetch)
    lexical = LexicalIndex.build(pool_texts).search([q.query for q in queries], fetch)
    per_query = {}
    for setting in CANDIDATES:
        gains = []
        for source, d, b in zip(sources, dense, lexical, strict=True):
            ranking = d if setting.mode == "dense" else b if setting.mode == "bm25" else setting.fuse(d, b)
            gains.append(_ndcg_at_10(ranking, source))
        per_query[setting.label] = np.array(gains)
    scores = {label: float(g.mean()) for label, g in per_query.items()}
    # Ties go to the earlier candidate: dense, BM25, then fusion from the smallest weight.
    best = max(CANDIDATES, key=lambda s: scores[s.label])
    single = max(CANDIDATES[:2], key=lambda s: scores[s.label])
    difference = per_query[best.label] - per_query[single.label]
    stderr = float(difference.std(ddof=1) / math.sqrt(len(difference))) if len(difference) > 1 else 0.0
    evidence = {"over": single.label, "difference": float(difference.mean()), "stderr": stderr}
    if best.mode == "hybrid" and difference.mean() <= MIN_Z * stderr:
        best = single  # a fusion must beat the better system alone by more than noise
    return Calibration(
        best, scores, queries=len(queries), pool=len(pool_texts), method=method, extra=evidence
    )


def _dense_rankings(queries: np.ndarray, pool: np.ndarray, k: int) -> list[dict[int, float]]:
    scores = queries @ pool.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < pool.shape[0] else None
    rankings = []
    for row, s in enumerate(scores):
        ids = top[row] if top is not None else np.arange(len(s))
        ids = ids[np.argsort(-s[ids], kind="stable")]
        rankings.append({int(i): float(s[i]) for i in ids})
    return rankings


def _ndcg_at_10(ranking: dict[int, float], relevant: int) -> float:
    """nDCG@10 with one relevant passage: 1 / log2(1 + its rank), 0 beyond rank 10."""
    for rank, doc in enumerate(ranking, start=1):
        if rank > 10:
            break
        if doc == relevant:
            return 1.0 / math.log2(1 + rank)
    return 0.0


def calibrate_store(
    store: Docstore,
    encoder: Encoder,
    transform: Transform,
    *,
    method: str = DEFAULT_QUERY_METHOD,
    batch_size: int = 32,
    seed: int = 0,
    show_progress: bool = False,
) -> Calibration | None:
    """`calibrate` an index's generation: a seeded pool of up to `POOL` of its chunks, their stored
    vectors through the index's `transform`, and `encoder` for the pseudo-queries and passages.
    `method`: how the pseudo-queries are made (`QUERY_METHODS`); where the generator cannot be
    loaded, inverse-cloze, and the calibration's `extra` says why."""
    check_query_method(method)
    ids = store.ids()
    if len(ids) > POOL:
        ids = np.sort(np.random.default_rng(seed).choice(ids, POOL, replace=False))
    texts = [document_text(c["title"], c["text"]) for c in store.chunks_at(ids)]
    vectors = transform.apply(store.vectors_at(ids, encoder.dim))

    def embed_queries(queries: list[str]) -> np.ndarray:
        return transform.apply(encoder.encode_queries(queries, batch_size=batch_size, show_progress=False))

    def embed_documents(documents: list[str]) -> np.ndarray:
        vectors = encoder.encode_documents(documents, batch_size=batch_size, show_progress=False)
        return transform.apply(vectors)

    written, unavailable = None, None
    if method == GENERATED:
        try:
            written = written_queries(texts, seed=seed, device=encoder.device, show_progress=show_progress)
        except RagkitError as error:  # no generator on this machine (not installed, no Hub access)
            unavailable = f"no generator ({error}); inverse-cloze instead"
    calibration = calibrate(
        texts,
        vectors,
        embed_queries,
        embed_documents,
        seed=seed,
        queries=written,
        method=GENERATED if written is not None else INVERSE_CLOZE,
    )
    if calibration is not None and unavailable:
        calibration.extra["fallback"] = unavailable
    return calibration
