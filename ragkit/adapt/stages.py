"""The three training stages as the trainer sees them: `step(i)` runs forward and backward for
optimizer step i and returns (loss, tokens). Which rows step i uses depends only on the seed and i,
so a resumed run sees exactly the batches the interrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import numpy as np
import torch

from ragkit.adapt.config import MNTPConfig, SimCSEConfig, StageConfig, SupervisedConfig
from ragkit.adapt.data import read_examples, read_texts, training_sentences
from ragkit.adapt.distributed import World, gather, step_seed
from ragkit.adapt.gradcache import Side, contrastive_backward
from ragkit.adapt.losses.contrastive import InfoNCELoss
from ragkit.adapt.losses.mntp import (
    IGNORE,
    MaskReplacement,
    MNTPLoss,
    mask_token_id,
    mask_tokens,
    maskable_positions,
)
from ragkit.encoders.encoder import Encoder
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError


class Sampler:
    """Rows of optimizer step i: epoch-wise permutations of the data, split evenly over ranks."""

    def __init__(self, n: int, config: StageConfig, world: World, stage: str, distinct: bool) -> None:
        if config.batch_size % world.size:
            raise RagkitError(
                f"{stage}: batch_size {config.batch_size} must divide by the {world.size} processes"
            )
        if distinct and n < config.batch_size:
            raise RagkitError(
                f"{stage}: {n} training examples, fewer than batch_size {config.batch_size}; "
                "give more data or a smaller `batch_size`"
            )
        if n == 0:
            raise RagkitError(f"{stage}: no training data")
        self.n, self.batch, self.seed, self.world = n, config.batch_size, config.seed, world
        self._epoch, self._order = -1, np.arange(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._order

    def batch_rows(self, step: int) -> list[int]:
        """The rows of step `step` on every rank: rank r trains on `[r::world size]` of them."""
        first = step * self.batch
        return [int(self._permutation(g // self.n)[g % self.n]) for g in range(first, first + self.batch)]

    def rows(self, step: int) -> list[int]:
        """This process's share of the step's rows."""
        return self.batch_rows(step)[self.world.rank :: self.world.size]

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the data (a last partial batch counts, as in a DataLoader)."""
        return -(-self.n // self.batch)


class DatasetSampler(Sampler):
    """Like `Sampler`, but every batch comes from one dataset, as llm2vec's E5 loader batches: each
    epoch, each dataset's rows are shuffled and cut into full batches (a last partial one is left
    out), and the batches of all datasets are shuffled together."""

    def __init__(self, datasets: list[str], config: StageConfig, world: World, stage: str) -> None:
        super().__init__(len(datasets), config, world, stage, distinct=True)
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(datasets):
            groups.setdefault(name, []).append(i)
        self.groups = [np.array(rows) for _, rows in sorted(groups.items())]
        if all(len(rows) < self.batch for rows in self.groups):
            raise RagkitError(
                f"{stage}: no dataset has batch_size {self.batch} examples; with batching "
                '"dataset" each batch comes from one; use a smaller `batch_size` or batching "mixed"'
            )
        self._epoch_batches: list[np.ndarray] = []

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            batches = []
            for rows in self.groups:
                shuffled = rows[rng.permutation(len(rows))]
                batches += [
                    shuffled[i : i + self.batch] for i in range(0, len(rows) - self.batch + 1, self.batch)
                ]
            self._epoch, self._epoch_batches = epoch, [batches[i] for i in rng.permutation(len(batches))]
        return self._epoch_batches

    def batch_rows(self, step: int) -> list[int]:
        """The step's rows over all processes: one dataset per batch, shuffled per epoch, the same on every
        process."""
        per_epoch = self.steps_per_epoch
        return [int(i) for i in self._batches(step // per_epoch)[step % per_epoch]]

    @property
    def steps_per_epoch(self) -> int:
        """Full batches of one dataset each in a pass over the data (as llm2vec's E5 loader makes them)."""
        return sum(len(rows) // self.batch for rows in self.groups)


def _chunks(rows: list[int], size: int) -> list[list[int]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


class MNTPStage:
    """Masked next-token prediction on full blocks of `max_length` tokens (no padding)."""

    name = "mntp"

    def __init__(
        self, encoder: Encoder, config: MNTPConfig, world: World, lm_head: torch.nn.Module | None = None
    ) -> None:
        if lm_head is None:
            raise RagkitError("mntp needs the model's LM head: load the model with with_lm_head=True")
        self.encoder, self.lm_head, self.config, self.world = encoder, lm_head, config, world
        tok = encoder.tokenizer
        self.mask_id = mask_token_id(tok)
        self.special_ids = sorted(set(tok.all_special_ids))
        self.loss = MNTPLoss(lm_head, getattr(encoder.model.config, "final_logit_softcapping", None))
        wanted = config.steps * config.batch_size
        # llm2vec's inputs: the tokenizer's own blocks, masked wherever its special-tokens mask allows.
        self.special: torch.Tensor | None = None
        if config.inputs == "llm2vec":
            self.blocks, self.special, epoch = reference_blocks(
                read_texts(config.source, raw=True),
                tok,
                config.max_length,
                wanted,
                config.decay_epochs is not None,
            )
        else:
            self.blocks, epoch = token_blocks(
                read_texts(config.source), tok, config.max_length, wanted, config.decay_epochs is not None
            )
        self.sampler = Sampler(len(self.blocks), config, world, self.name, distinct=False)
        self.epoch_steps = -(-epoch // config.batch_size)

    def step(self, step: int) -> tuple[float, int]:
        """One MNTP step: mask ~20% of the tokens, predict token i from the state at i-1; (loss, tokens)."""
        rows = self.sampler.rows(step)
        ids = self.blocks[rows]
        generator = torch.Generator().manual_seed(step_seed(self.config.seed, step, self.world))
        mask = torch.ones_like(ids)
        if self.special is not None:  # llm2vec's inputs: its special-tokens mask decides
            maskable = ~self.special[rows]
        else:
            maskable = maskable_positions(ids, mask, self.special_ids)
        inputs, labels = mask_tokens(
            ids,
            maskable,
            mask_id=self.mask_id,
            vocab_size=len(self.encoder.tokenizer),
            ratio=self.config.mask_ratio,
            replacement=cast(MaskReplacement, self.config.replacement),  # MNTPConfig.check checked it
            generator=generator,
            at_least_one=self.special is None,
        )
        predicted = labels[:, 1:] != IGNORE  # a label at position 0 has no state before it to predict it
        total = int(predicted.sum())
        loss_sum = 0.0
        for chunk in _chunks(list(range(len(ids))), self.config.micro):
            n = int(predicted[chunk].sum())
            if n == 0:
                continue
            hidden = self.encoder.hidden_states(inputs[chunk], mask[chunk])
            loss = self.loss(hidden, labels[chunk])
            (loss * n / total).backward()  # weighted so micro-batching gives the full batch's gradient
            loss_sum += loss.item() * n
        return loss_sum / max(total, 1), ids.numel()


def token_blocks(
    texts: Iterable[str], tokenizer, length: int, wanted: int, count_all: bool = False
) -> tuple[torch.Tensor, int]:
    """(n, length) blocks of concatenated texts (EOS between them), each starting with BOS, and how many
    blocks the whole data makes (with `count_all`, read to the end to size the schedule; else n).

    Stops reading once `wanted` blocks exist: 1000 steps of 32 need 16M tokens of wikitext-103's 100M.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    body = length - len(bos)
    eos = tokenizer.eos_token_id
    blocks: list[list[int]] = []
    pending: list[int] = []
    batch: list[str] = []
    count = 0

    def flush() -> None:
        nonlocal count
        if not batch:
            return
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            pending.extend([*ids, eos])
        batch.clear()
        while len(pending) >= body:
            if len(blocks) < wanted:
                blocks.append(bos + pending[:body])
            count += 1
            del pending[:body]

    for text in texts:
        batch.append(text)
        if len(batch) == 256:
            flush()
            if len(blocks) >= wanted and not count_all:
                break
    flush()
    if not blocks:
        raise RagkitError(
            f"mntp: the training text holds fewer than {body} tokens, not one block of max_length "
            f"{length}; give more text or a smaller `max_length`"
        )
    return torch.tensor(blocks, dtype=torch.long), count if count_all else len(blocks)


def reference_blocks(
    texts: Iterable[str], tokenizer, length: int, wanted: int, count_all: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """llm2vec's run_mntp.py blocks: each row tokenized with the tokenizer's own special tokens (none
    added between rows), the rows of each 1,000 (one `datasets.map` batch) concatenated and cut into
    blocks of `length`, the rest of the 1,000 dropped. Returns the first `wanted` blocks, their
    special-tokens mask (True: never masked) and how many blocks the whole data makes (with
    `count_all`, read to the end to size the schedule; else the blocks returned)."""
    blocks: list[list[int]] = []
    special: list[list[int]] = []
    count = 0
    rows: list[str] = []

    def group() -> int:
        encoded = tokenizer(rows, return_special_tokens_mask=True)
        ids = [i for row in encoded["input_ids"] for i in row]
        marks = [m for row in encoded["special_tokens_mask"] for m in row]
        n = len(ids) // length
        for b in range(min(n, wanted - len(blocks))):
            blocks.append(ids[b * length : (b + 1) * length])
            special.append(marks[b * length : (b + 1) * length])
        rows.clear()
        return n

    for text in texts:
        rows.append(text)
        if len(rows) == 1000:
            count += group()
            if len(blocks) >= wanted and not count_all:
                break
    if rows:
        count += group()
    if not blocks:
        raise RagkitError(
            f"mntp: the training text holds fewer than {length} tokens in 1,000 rows, not one block of "
            f"max_length {length}; give more text or a smaller `max_length`"
        )
    total = count if count_all else len(blocks)
    return torch.tensor(blocks, dtype=torch.long), torch.tensor(special, dtype=torch.bool), total


class SimCSEStage:
    """Each sentence twice, with different dropout: positives; the rest of the batch: negatives."""

    name = "simcse"

    def __init__(self, encoder: Encoder, config: SimCSEConfig, world: World, lm_head=None) -> None:
        self.encoder, self.config, self.world = encoder, config, world
        self.loss = InfoNCELoss(config.scale)
        if config.inputs == "llm2vec":
            # run_simcse.py: every line as it is (stripped), pooled whole: no separator marks a text.
            sentences = [line.strip() for line in read_texts(config.source, raw=True) if line.strip()]
            self.ids, prompts = encoder.token_ids(sentences)
            self.prompt_lengths = [0] * len(prompts)
        else:
            sentences = list(
                dict.fromkeys(s for text in read_texts(config.source) for s in training_sentences(text))
            )
            self.ids, self.prompt_lengths = encoder.token_ids(sentences)
        self.sampler = Sampler(len(self.ids), config, world, self.name, distinct=True)
        self.epoch_steps = self.sampler.steps_per_epoch

    def step(self, step: int) -> tuple[float, int]:
        """One SimCSE step: the same texts twice under different dropout, each other's positive; (loss,
        tokens)."""
        rows = self.sampler.rows(step)
        side = Side([self.ids[i] for i in rows], [self.prompt_lengths[i] for i in rows])
        offset = self.world.rank * len(rows)

        def loss_fn(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
            return self.loss(first, gather(second, self.world), offset)

        loss = contrastive_backward(
            self.encoder, [side, side], loss_fn, **chunk_settings(self.config, self.encoder, self.world)
        )
        return loss, 2 * sum(len(ids) for ids in side.ids)


class SupervisedStage:
    """Instructed queries against their positives, every other positive and the hard negatives."""

    name = "supervised"

    def __init__(self, encoder: Encoder, config: SupervisedConfig, world: World, lm_head=None) -> None:
        self.encoder, self.config, self.world = encoder, config, world
        self.loss = InfoNCELoss(config.scale)
        examples = read_examples(config.source, config.instruction, config.negatives)
        self.negatives, self.dropped = config.negatives, 0
        if self.negatives:
            with_negatives = [e for e in examples if len(e.negatives) >= self.negatives]
            if with_negatives:
                self.dropped = len(examples) - len(with_negatives)
                examples = with_negatives
            else:
                self.negatives = 0  # no hard negatives at all: in-batch negatives only
        # (ids, prompt length) per text: queries carry their dataset's instruction, documents none.
        self.queries = instructed_token_ids(
            encoder,
            [e.query for e in examples],
            [query_prompt(e.instruction, config.instruction_separator) for e in examples],
        )
        self.positives = list(zip(*encoder.token_ids([e.positive for e in examples]), strict=True))
        self.hard = [
            list(zip(*encoder.token_ids(e.negatives[: self.negatives]), strict=True)) for e in examples
        ]
        self.sampler: Sampler
        if config.batching == "dataset":
            self.sampler = DatasetSampler([e.dataset for e in examples], config, world, self.name)
        else:
            self.sampler = Sampler(len(examples), config, world, self.name, distinct=True)
        self.epoch_steps = self.sampler.steps_per_epoch

    def step(self, step: int) -> tuple[float, int]:
        """One contrastive step over queries, positives and hard negatives (GradCache when micro-batched);
        (loss, tokens)."""
        rows = self.sampler.rows(step)
        negatives = [text for i in rows for text in self.hard[i]]
        sides = [
            _side([self.queries[i] for i in rows]),
            _side([self.positives[i] for i in rows]),
            *([_side(negatives)] if negatives else []),
        ]
        offset = self.world.rank * len(rows)

        def loss_fn(q: torch.Tensor, p: torch.Tensor, n: torch.Tensor | None = None) -> torch.Tensor:
            documents = [gather(p, self.world)] + ([gather(n, self.world)] if n is not None else [])
            return self.loss(q, torch.cat(documents), offset)

        loss = contrastive_backward(
            self.encoder, sides, loss_fn, **chunk_settings(self.config, self.encoder, self.world)
        )
        return loss, sum(len(ids) for side in sides for ids in side.ids)


def instructed_token_ids(
    encoder: Encoder, texts: list[str], instructions: list[str]
) -> list[tuple[list[int], int]]:
    """(ids, prompt length) of each text with its own instruction, tokenized one instruction at a time."""
    out: list[tuple[list[int], int]] = [([], 0)] * len(texts)
    for instruction in dict.fromkeys(instructions):
        rows = [i for i, x in enumerate(instructions) if x == instruction]
        ids, prompts = encoder.token_ids([texts[i] for i in rows], instruction)
        for i, row_ids, prompt in zip(rows, ids, prompts, strict=True):
            out[i] = (row_ids, prompt)
    return out


def _side(texts: list[tuple[list[int], int]]) -> Side:
    """(ids, prompt length) pairs as one side of a contrastive batch."""
    return Side([ids for ids, _ in texts], [prompt for _, prompt in texts])


def chunk_settings(config: StageConfig, encoder: Encoder, world: World) -> dict:
    """Chunks of at most `micro_batch_size` rows, cached when that is below the batch; and at most a
    token budget per forward pass (small on CPU, where padding costs the most, large on GPU)."""
    local_batch = config.batch_size // world.size
    cached = config.micro_batch_size is not None and config.micro_batch_size < local_batch
    budget = 16384 if encoder.device.type == "cuda" else 512
    return {"max_rows": config.micro, "max_tokens": budget, "cache": cached}


class SyntheticStage(SupervisedStage):
    """The supervised stage on the pairs `prepare_synthetic` wrote for a corpus."""

    name = "synthetic"
