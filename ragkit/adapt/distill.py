"""The distillation stage: the student learns a teacher's scores over each query's candidates.

`prepare_distill` runs once before training and writes, into the stage's folder:
- `pool.jsonl`: every passage a query may meet (the data's positives and negatives, plus up to
  `max_passages` unlabeled ones from `passages`);
- `teacher/`: a dense teacher's vectors of the queries and the pool (ragkit/adapt/teacher.py), and
  `bm25/`, the pool's BM25 index (mining; the teacher too where it is or includes BM25);
- `distill.jsonl`: per query, its text, instruction and candidates (pool rows): the positive first,
  then `negatives` passages mined alternately from the teacher's and BM25's top `mine_depth`.
A rerun finds these and goes on to train (or resumes the teacher's vectors shard by shard).

Each step, the batch's queries are scored by the student (cosine) and by the teacher against every
candidate of the batch, theirs and the other queries' (in-batch), and the loss is the KL between the
two softmaxes at the shared `scale` (or margin-MSE over each query's own candidates).
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
from ragkit.adapt.losses.distillation import DistillKLLoss, MarginMSELoss, cosine_scores
from ragkit.adapt.stages import Sampler, chunk_settings, instructed_token_ids
from ragkit.adapt.teacher import BM25, TeacherScores, cached_vectors, load_teacher
from ragkit.encoders.encoder import Encoder
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError
from ragkit.index.lexical import LexicalIndex
from ragkit.io import atomic_path, atomic_write_text, read_json_lines

QUERIES_NAME, POOL_NAME = "distill.jsonl", "pool.jsonl"


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
    if (stage_dir / QUERIES_NAME).is_file():
        return prepared(config, stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    examples = read_examples(config.data, config.instruction, config.negatives)
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
        teacher = load_teacher(config.teacher, config.teacher_batch_size)
        folder = stage_dir / "teacher"
        query_vectors = cached_vectors(
            folder, "queries", queries, lambda rows: teacher.embed_queries(rows, instructions), show_progress
        )
        passage_vectors = cached_vectors(folder, "passages", pool, teacher.embed_passages, show_progress)
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
    return prepared(config, stage_dir)


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
    pool = [row["text"] for _, row in read_json_lines(stage_dir / POOL_NAME)]
    return queries, pool


def teacher_scores(stage_dir: Path, config: DistillConfig, queries: list[DistillQuery]) -> TeacherScores:
    """The teacher as `prepare_distill` cached it."""
    dense = None
    if config.teacher != BM25:
        folder = stage_dir / "teacher"
        dense = tuple(
            np.concatenate([np.load(p) for p in sorted(folder.glob(f"{name}-*.npy"))])
            for name in ("queries", "passages")
        )
    bm25 = None
    if config.teacher == BM25 or config.teacher_bm25_weight > 0:
        bm25 = (LexicalIndex.load(stage_dir / "bm25"), [q.query for q in queries])
    return TeacherScores(dense, bm25, config.teacher_bm25_weight)


class DistillStage:
    """Student cosines against the teacher's scores over the batch's candidates."""

    name = "distill"

    def __init__(self, encoder: Encoder, config: DistillConfig, world: World, lm_head=None) -> None:
        stage_dir = Path(config.data or "")
        if not (stage_dir / QUERIES_NAME).is_file():
            raise RagkitError(f"distill: {stage_dir} holds no prepared run; `prepare_distill` writes one")
        self.encoder, self.config, self.world = encoder, config, world
        self.loss = MarginMSELoss() if config.loss == "margin-mse" else DistillKLLoss(config.scale)
        queries, pool = read_prepared(stage_dir)
        self.queries = queries
        self.teacher = teacher_scores(stage_dir, config, queries)
        self.query_ids = instructed_token_ids(
            encoder, [q.query for q in queries], [q.instruction for q in queries]
        )
        used = sorted({c for q in queries for c in q.candidates})
        ids, prompts = encoder.token_ids([pool[i] for i in used])
        self.passage_ids = dict(zip(used, zip(ids, prompts, strict=True), strict=True))
        self.sampler = Sampler(len(queries), config, world, self.name, distinct=True)

    def step(self, step: int) -> tuple[float, int]:
        """One optimizer step: the student's scores against the cached teacher's over each query's candidates;
        (loss, tokens)."""
        rows = self.sampler.rows(step)
        size = self.world.size
        everyone = [r for rank in range(size) for r in self.sampler.batch_rows(step)[rank::size]]
        columns = [c for r in everyone for c in self.queries[r].candidates]  # every rank's, in rank order
        teacher = torch.from_numpy(self.teacher.scores(rows, columns))
        own = [c for r in rows for c in self.queries[r].candidates]
        per_query = len(self.queries[rows[0]].candidates)
        first = self.world.rank * len(own)
        positives = torch.arange(len(rows)) * per_query + first
        negatives = positives.unsqueeze(1) + torch.arange(1, per_query)
        sides = [
            Side([self.query_ids[r][0] for r in rows], [self.query_ids[r][1] for r in rows]),
            Side([self.passage_ids[c][0] for c in own], [self.passage_ids[c][1] for c in own]),
        ]

        def loss_fn(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            student = cosine_scores(q, gather(p, self.world))
            target = teacher.to(student.device)
            if isinstance(self.loss, MarginMSELoss):
                return self.loss(student, target, positives.to(student.device), negatives.to(student.device))
            return self.loss(student, target)

        loss = contrastive_backward(
            self.encoder, sides, loss_fn, **chunk_settings(self.config, self.encoder, self.world)
        )
        return loss, sum(len(ids) for side in sides for ids in side.ids)
