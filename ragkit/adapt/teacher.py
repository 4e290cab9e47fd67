"""Teachers for the distillation stage: who scores a query's candidates, and the cache of what they
computed, so a resumed run never pays for the teacher twice.

A teacher is a sentence-transformers model (a built-in name such as "all-minilm-l6-v2", a folder with
modules.json, or a Hub id), a ragkit encoder (a built-in name or a saved folder), "bm25", or a
dense teacher fused with BM25 (`teacher_bm25_weight` > 0). A dense teacher's vectors of every
query and passage are computed once, in blocks kept in the embedding cache under `$RAGKIT_HOME`
(keyed by the teacher's fingerprint and the texts, so a killed run and every later run with the same
teacher and texts reuse them), and copied whole into `<stage dir>/teacher/`; the score of any (query,
passage) pair, in-batch ones included, is then one dot product. BM25 scores are divided by each
query's best score among the candidates scored, so that they share the cosine's [0, 1] range and
the student's softmax temperature.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ragkit.embedding_cache import cached_embeddings
from ragkit.errors import RagkitError
from ragkit.io import atomic_path
from ragkit.progress import progress_bar
from ragkit.retrieval.lexical import LexicalIndex

BM25 = "bm25"


class DenseTeacher(Protocol):
    """What a dense teacher does: unit vectors for queries (with their instructions) and passages."""

    def embed_queries(self, texts: Sequence[str], instructions: Sequence[str]) -> np.ndarray:
        """Normalised vectors of `texts`, each with its instruction where the teacher takes one."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised vectors of passages."""

    def fingerprint(self) -> str:
        """What identifies the teacher's vectors in the embedding cache (settings and weights)."""


class SentenceTransformerTeacher:
    """A sentence-transformers model: queries get its own "query" prompt if it has one, not ours."""

    def __init__(self, name: str, batch_size: int) -> None:
        from mteb.types import PromptType

        from ragkit.eval.models import BUILTIN_SENTENCE_TRANSFORMERS, SentenceTransformerModel

        builtin = BUILTIN_SENTENCE_TRANSFORMERS.get(name)
        path = builtin.locate().parent if builtin else name
        self.model = SentenceTransformerModel(path, batch_size=batch_size, label=name)
        self._query = PromptType("query")
        self._document = PromptType("document")

    def embed_queries(self, texts: Sequence[str], instructions: Sequence[str]) -> np.ndarray:
        """The model's query vectors (its own query prompt, if any: ragkit's instructions are not its)."""
        return self.model.embed(texts, task_metadata=None, prompt_type=self._query)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """The model's document vectors."""
        return self.model.embed(texts, task_metadata=None, prompt_type=self._document)

    def fingerprint(self) -> str:
        """The model's path and a probe vector's digest."""
        return self.model.fingerprint()


class EncoderTeacher:
    """A ragkit encoder: queries carry their training rows' instructions, as the student's do."""

    def __init__(self, name: str, batch_size: int) -> None:
        from ragkit.encoders.encoder import Encoder
        from ragkit.eval.models import RagkitModel

        self.encoder, self.batch_size = Encoder.load(name), batch_size
        self._model = RagkitModel(self.encoder, batch_size=batch_size)

    def fingerprint(self) -> str:
        """The encoder's settings and a probe vector's digest, as evaluation keys it."""
        return self._model.fingerprint()

    def embed_queries(self, texts: Sequence[str], instructions: Sequence[str]) -> np.ndarray:
        """The encoder's vectors of `texts`, one encode call per distinct instruction."""
        vectors = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        for instruction in dict.fromkeys(instructions):
            rows = [i for i, x in enumerate(instructions) if x == instruction]
            texts_here = [texts[i] for i in rows]
            vectors[rows] = self.encoder.encode(
                texts_here, instruction=instruction, batch_size=self.batch_size, show_progress=False
            )
        return vectors

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """The encoder's document vectors."""
        return self.encoder.encode_documents(texts, batch_size=self.batch_size, show_progress=False)


class MeanTeacher:
    """Dense teachers as one: each text's unit vectors side by side, over sqrt(n), so the cosine of two
    texts is the mean of the teachers' cosines (and a cosine matrix, the embedding loss's target, the
    mean of theirs). On the dev splits the mean of all-MiniLM-L6-v2 and all-mpnet-base-v2 ranks above
    either alone (benchmarks/results/teachers.md)."""

    def __init__(self, teachers: Sequence[DenseTeacher]) -> None:
        self.teachers = list(teachers)

    def embed_queries(self, texts: Sequence[str], instructions: Sequence[str]) -> np.ndarray:
        """Each teacher's query vectors side by side, unit length."""
        return self._joined([t.embed_queries(texts, instructions) for t in self.teachers])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Each teacher's passage vectors side by side, unit length."""
        return self._joined([t.embed_passages(texts) for t in self.teachers])

    def fingerprint(self) -> str:
        """The teachers' fingerprints, in order."""
        return "mean|" + "|".join(t.fingerprint() for t in self.teachers)

    def _joined(self, vectors: list[np.ndarray]) -> np.ndarray:
        return (np.concatenate(vectors, axis=1) / np.sqrt(len(vectors))).astype(np.float32)


def load_teacher(name: str, batch_size: int = 64) -> DenseTeacher:
    """A sentence-transformers model (built-in name, folder with modules.json, or Hub id), else a ragkit
    encoder (a built-in name or a saved folder; a ragkit encoder on the Hub: download it first).
    Names joined by "+" ("all-minilm-l6-v2+path/to/all-mpnet-base-v2") are their `MeanTeacher`."""
    from ragkit.encoders.encoder import CONFIG_NAME
    from ragkit.encoders.loading import BUILTIN_ENCODERS, BUILTIN_MODELS
    from ragkit.eval.models import BUILTIN_SENTENCE_TRANSFORMERS
    from ragkit.io import is_hub_id

    local = Path(name).expanduser()
    if "+" in name and not local.exists():
        parts = [part.strip() for part in name.split("+")]
        if "bm25" in parts:
            raise RagkitError(
                f"teacher {name!r}: BM25 has no vectors to average; fuse it by `teacher_bm25_weight`"
            )
        return MeanTeacher([load_teacher(part, batch_size) for part in parts])
    sentence_transformers_dir = (local / "modules.json").is_file() and not (local / CONFIG_NAME).is_file()
    hub_id = not local.exists() and is_hub_id(name) and name not in {*BUILTIN_ENCODERS, *BUILTIN_MODELS}
    if name in BUILTIN_SENTENCE_TRANSFORMERS or sentence_transformers_dir or hub_id:
        return SentenceTransformerTeacher(name, batch_size)
    return EncoderTeacher(name, batch_size)


def cached_vectors(
    path: Path,
    key: str,
    texts: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    show_progress: bool = False,
) -> np.ndarray:
    """`embed(texts)`, saved whole at `path` (a .npy file) and, block by block, in the embedding cache
    under `key` (the teacher's fingerprint and what it embeds): a rerun reads `path`, a killed run or
    another run over the same texts reads the cached blocks and embeds the rest."""
    if path.is_file():
        vectors = np.load(path)
        if len(vectors) != len(texts):
            raise RagkitError(f"{path} holds {len(vectors)} vectors, not {len(texts)}; delete it and rerun")
        return vectors
    with progress_bar(f"teacher: {path.stem}", enabled=show_progress) as bar:
        task = bar.add_task(f"teacher: {path.stem}", total=len(texts))
        vectors = cached_embeddings(key, texts, embed, on_block=lambda n, hit: bar.advance(task, n))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.save(tmp, vectors)
    return vectors


def query_keys(texts: Sequence[str], instructions: Sequence[str]) -> list[str]:
    """Each query with its instruction as one string (the cache keys on both), split by `split_keys`."""
    return [
        json.dumps([instruction, text], ensure_ascii=False)
        for text, instruction in zip(texts, instructions, strict=True)
    ]


def split_keys(keys: Sequence[str]) -> tuple[list[str], list[str]]:
    """The texts and instructions `query_keys` joined."""
    pairs = [json.loads(k) for k in keys]
    return [text for _, text in pairs], [instruction for instruction, _ in pairs]


class TeacherScores:
    """The teacher's score of any (query, passage) pair of a prepared distillation run.

    `dense`: (queries, passages) unit vectors, or None for a BM25 teacher; `bm25`: the passages' BM25
    index and the query texts, or None for a dense teacher; `bm25_weight`: BM25's share of a fusion.
    """

    def __init__(
        self,
        dense: tuple[np.ndarray, np.ndarray] | None,
        bm25: tuple[LexicalIndex, list[str]] | None,
        bm25_weight: float,
    ) -> None:
        if dense is None and bm25 is None:
            raise ValueError("a teacher needs dense vectors, BM25 or both")
        self.dense, self.bm25, self.bm25_weight = dense, bm25, bm25_weight if dense is not None else 1.0

    def scores(self, queries: Sequence[int], passages: Sequence[int]) -> np.ndarray:
        """(len(queries), len(passages)) scores, each row in [0, 1] for BM25 and cosines for a dense
        teacher; a fusion mixes the two by `bm25_weight`."""
        result = np.zeros((len(queries), len(passages)), dtype=np.float32)
        if self.dense is not None:
            query_vectors, passage_vectors = self.dense
            cosines = query_vectors[list(queries)] @ passage_vectors[list(passages)].T
            result += (1 - self.bm25_weight) * cosines
        if self.bm25 is not None and self.bm25_weight > 0:
            index, texts = self.bm25
            columns = np.asarray(passages)
            for row, q in enumerate(queries):
                lexical = index.scores(texts[q])[columns]
                best = lexical.max(initial=0.0)
                result[row] += self.bm25_weight * (lexical / best if best > 0 else lexical)
        return result
