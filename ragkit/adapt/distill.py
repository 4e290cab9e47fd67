"""The distillation stage: the student learns a teacher's scores over each query's candidates.

`prepare_distill` runs once before training and writes, into the stage's folder:
- `pool.jsonl`: every passage a query may meet (the data's positives and negatives, plus up to
  `max_passages` unlabeled ones from `passages`);
- `teacher/`: a dense teacher's vectors of the queries and the pool (ragkit/adapt/teacher.py: also kept
  in the embedding cache, so another run with the same teacher and texts reuses them), and
  `bm25/`, the pool's BM25 index (mining; the teacher too where it is or includes BM25);
- `texts.jsonl` (for the embedding loss, when `texts` is given): up to `max_texts` of them, a fixed
  sample, with the teacher's vectors beside the others';
- `distill.jsonl`: per query, its text, instruction and candidates (pool rows): the positive first,
  then `negatives` passages mined alternately from the teacher's and BM25's top `mine_depth`.
A rerun finds these and goes on to train (or resumes the teacher's vectors block by block).

Each step, the batch's queries are scored by the student (cosine) and by the teacher against every
candidate of the batch, theirs and the other queries' (in-batch), and the loss is the KL between the
two softmaxes at the shared `scale` (or margin-MSE over each query's own candidates). The embedding
loss instead (or besides) matches the student's cosine matrix of every text of the step, queries,
candidates and `texts_per_step` sampled texts, to the dense teacher's.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ragkit.adapt.config import DistillConfig
from ragkit.adapt.data import read_examples, read_texts
from ragkit.adapt.distributed import World, gather
from ragkit.adapt.gradcache import Side, contrastive_backward
from ragkit.adapt.losses.distillation import DistillKLLoss, MarginMSELoss, cosine_scores, similarity_mse
from ragkit.adapt.stages import Sampler, chunk_settings, instructed_token_ids
from ragkit.adapt.teacher import (
    BM25,
    DenseTeacher,
    TeacherScores,
    cached_vectors,
    load_teacher,
    query_keys,
    split_keys,
)
from ragkit.encoders.encoder import Encoder
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError
from ragkit.io import atomic_path, atomic_write_text, read_json_lines
from ragkit.retrieval.lexical import LexicalIndex

QUERIES_NAME, POOL_NAME, TEXTS_NAME = "distill.jsonl", "pool.jsonl", "texts.jsonl"


@dataclass
class DistillQuery:
    """One prepared query: its text, instruction and candidate rows of the passage pool."""

    query: str
    instruction: str
    candidates: list[int]  # pool rows: the positive, then the mined negatives


def prepare_distill(
    encoder: Encoder, config: DistillConfig, stage_dir: Path, show_progress: bool
) -> DistillConfig:
    """Write the pool, the teacher's vectors and each query's candidates (once; a rerun reuses them)."""
    teacher = _LazyTeacher(config)
    if not (stage_dir / QUERIES_NAME).is_file():
        _prepare_queries(teacher, config, stage_dir, show_progress)
    if config.texts:
        texts = _texts(config, stage_dir / TEXTS_NAME)
        teacher.vectors(stage_dir, "texts", texts, teacher.embed_passages, show_progress)
    return prepared(config, stage_dir)


class _LazyTeacher:
    """The run's dense teacher, loaded on first use: a rerun whose vectors are all cached never loads it."""

    def __init__(self, config: DistillConfig) -> None:
        self.config = config
        self._teacher: DenseTeacher | None = None

    def _get(self) -> DenseTeacher:
        if self._teacher is None:
            self._teacher = load_teacher(self.config.teacher or "", self.config.teacher_batch_size)
        return self._teacher

    def embed_queries(self, texts, instructions) -> np.ndarray:
        """The teacher's query vectors."""
        return self._get().embed_queries(texts, instructions)

    def embed_passages(self, texts) -> np.ndarray:
        """The teacher's passage vectors."""
        return self._get().embed_passages(texts)

    def vectors(self, stage_dir: Path, name: str, texts: list[str], embed, show_progress: bool) -> np.ndarray:
        """The teacher's vectors of `texts`, kept as `teacher/<name>.npy` in the stage's folder."""
        path = stage_dir / "teacher" / f"{name}.npy"
        key = "" if path.is_file() else f"teacher|{self._get().fingerprint()}|{name}"
        return cached_vectors(path, key, texts, embed, show_progress)


def _prepare_queries(
    teacher: _LazyTeacher, config: DistillConfig, stage_dir: Path, show_progress: bool
) -> None:
    """The pool, BM25, the teacher's query and passage vectors and each query's candidates."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    examples = read_examples(config.source, config.instruction, config.negatives)
    wanted = config.queries or config.steps * config.batch_size
    order = np.random.default_rng(config.seed).permutation(len(examples))[:wanted]
    chosen = [examples[i] for i in sorted(order)]
    pool = list(dict.fromkeys(t for e in examples for t in (e.positive, *e.negatives)))
    if config.passages:
        extra = (t for t in read_texts(config.passages) if t not in pool)
        pool += list(dict.fromkeys(t for _, t in zip(range(config.max_passages), extra, strict=False)))
    if len(pool) <= config.negatives:
        raise RagkitError(
            f"distill: {len(pool)} passages, too few to mine {config.negatives} negatives per query; "
            "give more data (`passages`) or fewer `negatives`"
        )
    row_of = {text: i for i, text in enumerate(pool)}
    queries = [e.query for e in chosen]
    instructions = [query_prompt(e.instruction, config.instruction_separator) for e in chosen]
    lexical = LexicalIndex.build(pool)
    with atomic_path(stage_dir / "bm25") as tmp:
        tmp.mkdir()
        lexical.save(tmp)
    depth = min(config.mine_depth, len(pool))
    mined = [[int(i) for i in hits] for hits in lexical.search(queries, depth)]
    if config.teacher != BM25:
        query_vectors = teacher.vectors(
            stage_dir,
            "queries",
            query_keys(queries, instructions),
            lambda keys: teacher.embed_queries(*split_keys(keys)),
            show_progress,
        )
        passage_vectors = teacher.vectors(stage_dir, "passages", pool, teacher.embed_passages, show_progress)
        dense = _top_k(query_vectors, passage_vectors, depth)
        mined = [_interleave(a, b) for a, b in zip(dense, mined, strict=True)]
    rng = np.random.default_rng([config.seed, 1])
    lines = []
    for example, instruction, hits in zip(chosen, instructions, mined, strict=True):
        positive = row_of[example.positive]
        negatives = [i for i in hits if i != positive][: config.negatives]
        while len(negatives) < config.negatives:  # too few hits (short queries, small pools): random
            pick = int(rng.integers(len(pool)))
            if pick != positive and pick not in negatives:
                negatives.append(pick)
        row = {"query": example.query, "instruction": instruction, "candidates": [positive, *negatives]}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(stage_dir / POOL_NAME, "".join(json.dumps({"text": t}) + "\n" for t in pool))
    atomic_write_text(stage_dir / QUERIES_NAME, "".join(lines))  # last: its presence means "prepared"


def _texts(config: DistillConfig, path: Path) -> list[str]:
    """The texts of the embedding loss: those `path` holds, else up to `max_texts` distinct texts of
    `texts` (a sample fixed by `seed`, in their order), written to `path` before the teacher embeds
    them, so a rerun embeds the same rows."""
    if path.is_file():
        return _stored_texts(path)
    texts = list(dict.fromkeys(read_texts(config.texts or "")))
    if len(texts) > config.max_texts:
        keep = np.random.default_rng([config.seed, 2]).choice(len(texts), config.max_texts, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    if not texts:
        raise RagkitError(f"distill: {config.texts} holds no texts; give a file or folder of text (`texts`)")
    atomic_write_text(path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
    return texts


def _stored_texts(path: Path) -> list[str]:
    """The texts of a {"text"} JSON lines file the stage wrote (the pool, the embedding loss's texts)."""
    return [row["text"] for _, row in read_json_lines(path)]


def prepared(config: DistillConfig, stage_dir: Path) -> DistillConfig:
    """The config the stage trains with: its data is what `prepare_distill` wrote."""
    return dataclasses.replace(config, data=str(stage_dir))


def _top_k(queries: np.ndarray, passages: np.ndarray, k: int, chunk: int = 1024) -> list[list[int]]:
    """Each query's k best passages by dot product, best first."""
    result = []
    passages_t = torch.from_numpy(passages)
    for start in range(0, len(queries), chunk):
        scores = torch.from_numpy(queries[start : start + chunk]) @ passages_t.T
        result += scores.topk(k, dim=1).indices.tolist()
    return result


def _interleave(first: list[int], second: list[int]) -> list[int]:
    """first[0], second[0], first[1], ... without repeats."""
    merged = [x for pair in zip(first, second, strict=False) for x in pair]
    merged += first[len(second) :] + second[len(first) :]
    return list(dict.fromkeys(merged))


def read_prepared(stage_dir: Path) -> tuple[list[DistillQuery], list[str]]:
    """The queries and passage pool a distill stage prepared (mined) before training."""
    queries = [DistillQuery(**row) for _, row in read_json_lines(stage_dir / QUERIES_NAME)]
    pool = _stored_texts(stage_dir / POOL_NAME)
    return queries, pool


def teacher_vectors(stage_dir: Path, name: str) -> np.ndarray:
    """The dense teacher's vectors of "queries", "passages" or "texts", in row order."""
    return np.load(stage_dir / "teacher" / f"{name}.npy")


def teacher_scores(stage_dir: Path, config: DistillConfig, queries: list[DistillQuery]) -> TeacherScores:
    """The teacher as `prepare_distill` cached it."""
    dense = None
    if config.teacher != BM25:
        dense = (teacher_vectors(stage_dir, "queries"), teacher_vectors(stage_dir, "passages"))
    bm25 = None
    if config.teacher == BM25 or config.teacher_bm25_weight > 0:
        bm25 = (LexicalIndex.load(stage_dir / "bm25"), [q.query for q in queries])
    return TeacherScores(dense, bm25, config.teacher_bm25_weight)


class DistillStage:
    """Student cosines against the teacher's scores over the batch's candidates, or the student's cosine
    matrix of the step's texts against the teacher's (or both)."""

    name = "distill"

    def __init__(self, encoder: Encoder, config: DistillConfig, world: World, lm_head=None) -> None:
        stage_dir = Path(config.data or "")
        if not (stage_dir / QUERIES_NAME).is_file():
            raise RagkitError(f"distill: {stage_dir} holds no prepared run; `prepare_distill` writes one")
        self.encoder, self.config, self.world = encoder, config, world
        self.loss = MarginMSELoss() if config.loss == "margin-mse" else DistillKLLoss(config.scale)
        queries, pool = read_prepared(stage_dir)
        self.texts: list[str] = []
        if config.learns_geometry and (stage_dir / TEXTS_NAME).is_file():
            self.texts = _stored_texts(stage_dir / TEXTS_NAME)
            self.text_vectors = teacher_vectors(stage_dir, "texts")
        self.queries = queries
        self.teacher = teacher_scores(stage_dir, config, queries)
        self.query_ids = instructed_token_ids(
            encoder, [q.query for q in queries], [q.instruction for q in queries]
        )
        used = sorted({c for q in queries for c in q.candidates})
        ids, prompts = encoder.token_ids([pool[i] for i in used])
        self.passage_ids = dict(zip(used, zip(ids, prompts, strict=True), strict=True))
        self.sampler = Sampler(len(queries), config, world, self.name, distinct=True)
        self.epoch_steps = self.sampler.steps_per_epoch

    def step(self, step: int) -> tuple[float, int]:
        """One optimizer step: the student's scores against the cached teacher's over each query's candidates;
        (loss, tokens)."""
        rows = self.sampler.rows(step)
        size = self.world.size
        everyone = [r for rank in range(size) for r in self.sampler.batch_rows(step)[rank::size]]
        columns = [c for r in everyone for c in self.queries[r].candidates]  # every rank's, in rank order
        ranks = self.config.loss != "embedding"  # a loss on the teacher's scores of the candidates
        teacher = torch.from_numpy(self.teacher.scores(rows, columns)) if ranks else None
        own = [c for r in rows for c in self.queries[r].candidates]
        per_query = len(self.queries[rows[0]].candidates)
        first = self.world.rank * len(own)
        positives = torch.arange(len(rows)) * per_query + first
        negatives = positives.unsqueeze(1) + torch.arange(1, per_query)
        sides = [
            Side([self.query_ids[r][0] for r in rows], [self.query_ids[r][1] for r in rows]),
            Side([self.passage_ids[c][0] for c in own], [self.passage_ids[c][1] for c in own]),
        ]
        geometry = None
        if self.config.learns_geometry:
            assert self.teacher.dense is not None  # a geometry loss keeps the teacher's vectors
            query_vectors, passage_vectors = self.teacher.dense
            parts = [query_vectors[rows], passage_vectors[own]]
            if self.texts:
                text_rows = self.text_rows(step)
                sides.append(Side(*self.encoder.token_ids([self.texts[i] for i in text_rows])))
                parts.append(self.text_vectors[text_rows])
            geometry = torch.from_numpy(np.concatenate(parts))

        def loss_fn(q: torch.Tensor, p: torch.Tensor, *texts: torch.Tensor) -> torch.Tensor:
            total = torch.zeros((), device=q.device)
            if teacher is not None:
                student = cosine_scores(q, gather(p, self.world))
                target = teacher.to(student.device)
                if isinstance(self.loss, MarginMSELoss):
                    return self.loss(student, target, positives.to(q.device), negatives.to(q.device))
                total = self.loss(student, target)
            if geometry is not None:
                weight = self.config.embedding_weight if ranks else 1.0
                total = total + weight * similarity_mse(torch.cat([q, p, *texts]), geometry)
            return total

        loss = contrastive_backward(
            self.encoder, sides, loss_fn, **chunk_settings(self.config, self.encoder, self.world)
        )
        return loss, sum(len(ids) for side in sides for ids in side.ids)

    def text_rows(self, step: int) -> list[int]:
        """The `texts_per_step` texts of step `step` on this process: a draw fixed by seed, step and rank,
        so a resumed run sees the same ones."""
        rng = np.random.default_rng([self.config.seed, 3, step, self.world.rank])
        size = min(self.config.texts_per_step, len(self.texts))
        return sorted(int(i) for i in rng.choice(len(self.texts), size, replace=False))
