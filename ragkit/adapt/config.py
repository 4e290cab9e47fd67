"""Training settings per stage, with the paper's values as defaults, and presets for smaller machines."""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import RagkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

# "auto": bf16 where the device computes it in hardware (AVX-512 bf16 / AMX CPUs, bf16 GPUs), else
# none; "fp32" (or leaving it out) turns it off, which a TOML file, having no null, can only say so.
AUTOCAST_CHOICES: tuple[str | None, ...] = (None, "fp32", "bf16", "auto")
# What reaches the losses: "ragkit", ragkit's own choices (the docstrings of each stage say them), or
# "llm2vec", exactly what the reference's training scripts (llm2vec's experiments/run_*.py) build from
# the same data: MNTP blocks of the tokenizer's own ids masked wherever its special-tokens mask allows,
# SimCSE on every line as it is, supervised queries as `f"{instruction}; "` joined as text, chat bases'
# texts in their user turn (docs/adapt.md, "The paper preset against the reference").
TRAINING_INPUTS: tuple[str, ...] = ("ragkit", "llm2vec")
# What a stage trains: "lora", LoRA adapters on every projection (LLM2Vec's choice), or "full", the
# weights themselves (AdamW state of twice their size: ~1 GB for every weight of SmolLM2-135M).
TUNING_CHOICES: tuple[str, ...] = ("lora", "full")


@dataclass
class StageConfig:
    """What every stage shares: LoRA (r 16, alpha 32, dropout 0.05 on all projections), AdamW, schedule."""

    steps: int = 1000
    batch_size: int = 32  # sequences per optimizer step, over all processes
    micro_batch_size: int | None = None  # sequences per forward pass; None: the whole batch at once
    max_length: int = 512
    lr: float = 5e-5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # Train only the top N layers (LoRA, or with tuning "full" their weights): backward stops below them.
    lora_layers: int | None = None
    tuning: str = "lora"  # or "full": every weight of those layers (TUNING_CHOICES)
    seed: int = 42
    checkpoint_every: int = 100
    snapshot_every: int | None = None  # also keep the LoRA adapter every N steps, to pick one on a dev split
    gradient_checkpointing: bool = False
    autocast: str | None = None  # "bf16" or "auto": bf16 matmuls over fp32 weights (see AUTOCAST_CHOICES)
    data: str | None = None  # file, folder, Hub dataset id or built-in name; None: the stage's default
    inputs: str = "ragkit"  # or "llm2vec": the reference scripts' inputs (TRAINING_INPUTS)
    # The linear decay reaches 0 after this many epochs of the data, as the reference's HF Trainer sizes
    # it (num_train_epochs 3, stopped at step 1000 with the rate not yet 0); None: at `steps`.
    decay_epochs: float | None = None

    def check(self, stage: str) -> None:
        """Refuse settings the stage cannot train with, naming the parameter and the stage."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise RagkitError(f"{stage}: {what}")

        need(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        need(self.batch_size >= 2 or stage == "mntp", f"batch_size must be at least 2, got {self.batch_size}")
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(
            self.micro_batch_size is None or self.micro_batch_size >= 1, "micro_batch_size must be at least 1"
        )
        need(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}")
        need(0 < self.lr < 1, f"lr must be between 0 and 1, got {self.lr}")
        need(
            0 <= self.warmup_steps < self.steps,
            f"warmup_steps must be in [0, steps), got {self.warmup_steps}",
        )
        need(self.lora_r >= 1, f"lora_r must be at least 1, got {self.lora_r}")
        need(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(
            self.lora_layers is None or self.lora_layers >= 1,
            f"lora_layers must be at least 1, got {self.lora_layers}",
        )
        need(
            self.tuning in TUNING_CHOICES,
            f"tuning must be one of {', '.join(TUNING_CHOICES)}, got {self.tuning!r}",
        )
        need(self.checkpoint_every >= 1, f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        need(
            self.snapshot_every is None or self.snapshot_every >= 1,
            f"snapshot_every must be at least 1, got {self.snapshot_every}",
        )
        need(
            self.autocast in AUTOCAST_CHOICES,
            f"autocast must be one of {', '.join(map(str, AUTOCAST_CHOICES))}, got {self.autocast!r}",
        )
        need(
            self.inputs in TRAINING_INPUTS,
            f"inputs must be one of {', '.join(TRAINING_INPUTS)}, got {self.inputs!r}",
        )
        need(
            self.decay_epochs is None or self.decay_epochs > 0,
            f"decay_epochs must be positive, got {self.decay_epochs}",
        )

    @property
    def micro(self) -> int:
        """Sequences per forward pass: `micro_batch_size`, else the whole batch at once."""
        return self.micro_batch_size or self.batch_size

    @property
    def source(self) -> str:
        """`data`, which the stage reads: an unset one is an error that says what to set."""
        if not self.data:
            raise RagkitError(f"{type(self).__name__}.data is not set: name a file, folder or dataset")
        return self.data


@dataclass
class MNTPConfig(StageConfig):
    """Masked next-token prediction: 20% masked BERT-style, 512-token blocks, lr 5e-5, batch 32."""

    mask_ratio: float = 0.2
    replacement: str = "bert"  # "all": replace every selected token (the paper's Mistral run, ratio 0.8)
    data: str | None = "wikitext-103"

    def check(self, stage: str = "mntp") -> None:
        """StageConfig's checks plus the masking settings."""
        super().check(stage)
        if not 0 < self.mask_ratio < 1:
            raise RagkitError(f"mntp: mask_ratio must be between 0 and 1, got {self.mask_ratio}")
        if self.replacement not in ("bert", "all"):
            raise RagkitError(f"mntp: replacement must be 'bert' or 'all', got {self.replacement!r}")


@dataclass
class SimCSEConfig(StageConfig):
    """Unsupervised SimCSE: batch 128, max length 128, lr 3e-5, attention dropout 0.3, scale 20."""

    batch_size: int = 128
    max_length: int = 128
    lr: float = 3e-5
    attention_dropout: float = 0.3
    scale: float = 20.0
    data: str | None = "wiki1m"

    def check(self, stage: str = "simcse") -> None:
        """StageConfig's checks plus the dropout rates."""
        super().check(stage)
        if not 0 <= self.attention_dropout < 1:
            raise RagkitError(f"simcse: attention_dropout must be in [0, 1), got {self.attention_dropout}")


BATCHINGS = ("dataset", "mixed")


@dataclass
class SupervisedConfig(StageConfig):
    """Supervised contrastive as llm2vec's run_supervised.py: effective batch 512 (GradCache), 1000
    steps, lr 2e-4, 300 warmup steps, scale 50, max length 512, one dataset per batch, "; " after the
    instruction."""

    batch_size: int = 512
    micro_batch_size: int | None = 32
    lr: float = 2e-4
    warmup_steps: int = 300
    scale: float = 50.0
    negatives: int = 1  # hard negatives per query (in-batch negatives come on top)
    instruction: str | None = None  # for rows that carry none and whose file name is not an E5 dataset
    # "dataset": every batch from one dataset (file), as llm2vec's E5 loader batches, so in-batch
    # negatives are of the query's own kind; "mixed": batches drawn across all the data.
    batching: str = "dataset"
    instruction_separator: str = "; "  # between instruction and query: llm2vec trains with "; "
    gradient_checkpointing: bool = True
    data: str | None = "sentence-transformers/all-nli:triplet"

    def check(self, stage: str = "supervised") -> None:
        """StageConfig's checks plus the negatives and batching settings."""
        super().check(stage)
        if self.negatives < 0:
            raise RagkitError(f"supervised: negatives must be 0 or more, got {self.negatives}")
        if self.batching not in BATCHINGS:
            raise RagkitError(
                f"supervised: batching must be one of {', '.join(BATCHINGS)}, got {self.batching!r}"
            )


TEACHER_LOSSES = ("kl", "margin-mse", "embedding", "kl+embedding")


@dataclass
class DistillConfig(SupervisedConfig):
    """Distillation from a teacher's scores (ragkit/adapt/distill.py). The paper has no such stage:
    the student learns the teacher's softmax over each query's candidates (its positive, `negatives`
    passages mined by the teacher and by BM25, and every other candidate in the batch), KL as in
    RocketQAv2 (Ren et al., 2021) and TCT-ColBERT (Lin et al., 2021); margin-MSE (Hofstätter et al.,
    2020) on the same scores as an option. Student and teacher share `scale`, so a student whose
    cosines equal the teacher's has zero loss. The "embedding" loss learns the teacher's geometry
    instead: the MSE between the student's and the dense teacher's cosine matrices over every text of
    the step (queries, candidates and `texts_per_step` texts of `texts`, any text at all), with no map
    between their widths; "kl+embedding" adds it, times `embedding_weight`, to the KL."""

    batch_size: int = 64
    micro_batch_size: int | None = 16
    scale: float = 20.0  # inverse temperature of the student's and the teacher's softmax
    negatives: int = 3  # mined candidates per query, beside its positive
    batching: str = "mixed"
    # A sentence-transformers model, a ragkit encoder, "bm25", or dense teachers joined by "+" (the mean
    # of their cosines: "all-minilm-l6-v2+path/to/all-mpnet-base-v2").
    teacher: str | None = None
    teacher_bm25_weight: float = 0.0  # > 0: the teacher is a fusion, this share from BM25
    teacher_batch_size: int = 64
    loss: str = "kl"  # or "margin-mse"
    mine_depth: int = 30  # candidates come from the teacher's and BM25's top this many
    queries: int | None = None  # queries the run uses (a fixed sample); None: steps x batch_size
    passages: str | None = None  # unlabeled passages that join the candidate pool (file or folder)
    max_passages: int = 20000  # of `passages`, at most this many
    texts: str | None = None  # any texts (file or folder) whose geometry the embedding loss teaches
    max_texts: int = 200000  # of `texts`, at most this many (a fixed sample), embedded once by the teacher
    texts_per_step: int = 64  # of them in each step, beside the queries and candidates
    # Of the embedding term in "kl+embedding": 4 gives it the KL's pull at the start (gradient norms 0.13
    # and 0.50 on release 0.5 of llm2vec-smollm2-135m with MiniLM: benchmarks/results/distill_losses.md).
    embedding_weight: float = 4.0

    @property
    def learns_geometry(self) -> bool:
        """Whether the loss has the embedding (cosine-matrix) term."""
        return self.loss in ("embedding", "kl+embedding")

    def check(self, stage: str = "distill") -> None:
        """StageConfig's checks plus the teacher, mining and loss settings."""
        super().check(stage)
        if not self.teacher:
            raise RagkitError(
                f"{stage}: needs a teacher (`teacher`): a sentence-transformers model, "
                "a ragkit encoder, or bm25"
            )
        if not 0 <= self.teacher_bm25_weight <= 1:
            raise RagkitError(
                f"{stage}: teacher_bm25_weight must be in [0, 1], got {self.teacher_bm25_weight}"
            )
        if self.loss not in TEACHER_LOSSES:
            raise RagkitError(f"{stage}: loss must be one of {', '.join(TEACHER_LOSSES)}, got {self.loss!r}")
        if self.learns_geometry and self.teacher == "bm25":
            raise RagkitError(
                f"{stage}: loss {self.loss!r} learns a dense teacher's vectors and BM25 has none; "
                "give a dense `teacher` or loss 'kl'"
            )
        if self.texts and not self.learns_geometry:
            raise RagkitError(
                f"{stage}: `texts` feed the embedding loss; give loss 'embedding' or 'kl+embedding', "
                "or leave `texts` out"
            )
        if self.embedding_weight <= 0:
            raise RagkitError(f"{stage}: embedding_weight must be positive, got {self.embedding_weight}")
        for name in ("negatives", "mine_depth", "teacher_batch_size", "max_passages", "max_texts"):
            if getattr(self, name) < 1:
                raise RagkitError(f"{stage}: {name} must be at least 1, got {getattr(self, name)}")
        if self.queries is not None and self.queries < self.batch_size:
            raise RagkitError(f"{stage}: queries must be at least batch_size, got {self.queries}")
        if self.texts and self.texts_per_step < 1:
            raise RagkitError(f"{stage}: texts_per_step must be at least 1, got {self.texts_per_step}")


@dataclass
class SyntheticConfig(SupervisedConfig):
    """Supervised contrastive training on synthetic queries for the passages of `data`, a corpus with
    no labels (ragkit/adapt/synthetic.py). The paper has no such stage: the defaults are llm2vec's
    supervised ones at a tenth of the steps (100 of batch 512: two epochs of one query for each of
    25,600 passages), BM25 round trip top 10, hard negatives from the encoder's ranks 4-30."""

    steps: int = 100
    warmup_steps: int = 10
    batching: str = "mixed"  # one corpus: there is only one dataset to batch by
    instruction: str | None = "Given a query, retrieve documents relevant to it"
    data: str | None = None  # the corpus (`ragkit adapt --corpus`)
    generator: str = "smollm2-135m"  # instruction-tuned LM that writes the queries
    generator_dtype: str = "bf16"
    passages: int = 25600  # sampled from the corpus, one query each
    passage_words: int = 120  # of each passage in the generator's prompt
    max_new_tokens: int = 32
    generation_batch_size: int = 32
    round_trip_k: int = 10  # keep a query if BM25 ranks its passage in the top k of the corpus
    negative_skip: int = 3  # the encoder's top ranks, left out as likely unlabeled positives
    negative_depth: int = 30  # hard negatives come from the ranks after `negative_skip` up to this
    # GPL (Wang et al., 2022): a teacher (as the distill stage's `teacher`) scores each query's
    # candidates, mined from the whole corpus, and the student learns those scores (the distill
    # stage's loss) instead of taking the passage a query came from as its only positive.
    teacher: str | None = None
    teacher_bm25_weight: float = 0.0
    teacher_batch_size: int = 64

    def check(self, stage: str = "synthetic") -> None:
        """StageConfig's checks plus the corpus and the generation settings."""
        super().check(stage)
        if self.data is None:
            raise RagkitError(f"{stage}: needs documents to write queries for: give `corpus` (a folder)")
        for name in ("passages", "passage_words", "max_new_tokens", "generation_batch_size", "round_trip_k"):
            if getattr(self, name) < 1:
                raise RagkitError(f"{stage}: {name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.negative_skip < self.negative_depth:
            raise RagkitError(
                f"{stage}: need 0 <= negative_skip < negative_depth, got {self.negative_skip} and "
                f"{self.negative_depth}"
            )
        if self.teacher is not None:
            self.labelled_by_teacher(data="", passages="").check(stage)

    def labelled_by_teacher(self, data: str, passages: str) -> DistillConfig:
        """With a `teacher`: the distill stage's settings that train on the synthetic pairs in `data`,
        with every passage of the corpus (`passages`, a JSON lines file) as a candidate. Training
        settings carry over; the loss and its `scale` are the distill stage's."""
        shared = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(SupervisedConfig)
            if f.name not in ("scale", "batching", "data")
        }
        return DistillConfig(
            **shared,
            data=data,
            teacher=self.teacher,
            teacher_bm25_weight=self.teacher_bm25_weight,
            teacher_batch_size=self.teacher_batch_size,
            passages=passages,
            max_passages=10**9,
        )


# The reference scripts' inputs and schedule, for the stages they have (docs/adapt.md's side-by-side table).
_REFERENCE = {"inputs": "llm2vec", "decay_epochs": 3.0}

# Overrides of the paper's defaults, per stage. `paper` is the recipe as published, trained on what the
# reference's scripts feed their losses; the other presets keep ragkit's inputs.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"mntp": _REFERENCE, "simcse": _REFERENCE, "supervised": _REFERENCE},
    # Proves the pipeline end to end on a laptop CPU in a few minutes; data that ships with Python.
    "cpu-smoke": {
        "mntp": {"steps": 20, "batch_size": 8, "max_length": 128, "checkpoint_every": 10, "data": "pydoc"},
        "simcse": {"steps": 20, "batch_size": 16, "max_length": 64, "checkpoint_every": 10, "data": "pydoc"},
        "supervised": {
            "steps": 20,
            "batch_size": 16,
            "micro_batch_size": 8,
            "max_length": 128,
            "warmup_steps": 2,
            "checkpoint_every": 10,
            "gradient_checkpointing": False,
            "batching": "mixed",
            "instruction_separator": ": ",
            "data": "pydoc",
        },
        "distill": {
            "steps": 10,
            "batch_size": 8,
            "max_length": 128,
            "warmup_steps": 1,
            "checkpoint_every": 5,
            "gradient_checkpointing": False,
            "instruction_separator": ": ",
            "negatives": 2,
            "teacher": "bm25",
            "data": "pydoc",
        },
        "synthetic": {
            "steps": 10,
            "batch_size": 8,
            "max_length": 128,
            "warmup_steps": 1,
            "checkpoint_every": 5,
            "gradient_checkpointing": False,
            "instruction_separator": ": ",
            "passages": 32,
            "max_new_tokens": 16,
        },
    },
    # A real adaptation of a ~100M model on a CPU in about an hour per stage. bf16 autocast where the
    # CPU has it in hardware: 1.38x (MNTP), 1.31x (SimCSE), 1.1-1.4x (supervised) the fp32 speed with
    # the same loss curves (benchmarks/results/adapt_speed.md).
    "cpu-small": {
        "mntp": {
            "steps": 200,
            "batch_size": 16,
            "micro_batch_size": 8,
            "max_length": 128,
            "lr": 1e-4,
            "checkpoint_every": 25,
            "autocast": "auto",
        },
        "simcse": {
            "steps": 200,
            "batch_size": 64,
            "micro_batch_size": 32,
            "max_length": 64,
            "checkpoint_every": 25,
            "autocast": "auto",
        },
        "supervised": {
            "steps": 200,
            "batch_size": 64,
            "micro_batch_size": 16,
            "max_length": 128,
            "warmup_steps": 20,
            "checkpoint_every": 25,
            "gradient_checkpointing": False,
            "autocast": "auto",
            # How the shipped llm2vec-smollm2-135m was trained (before the reference's recipe was an
            # option; which of the two is better here is not measured yet).
            "batching": "mixed",
            "instruction_separator": ": ",
        },
        # Distillation from all-MiniLM-L6-v2 (offline from its PyPI wheel): 16 queries x 4 candidates a
        # step, LoRA on the top 15 layers as the second supervised round of the built-in encoder.
        "distill": {
            "steps": 1000,
            "batch_size": 16,
            "micro_batch_size": 16,
            "max_length": 128,
            "lr": 1e-4,
            "warmup_steps": 50,
            "checkpoint_every": 10,
            "gradient_checkpointing": False,
            "autocast": "auto",
            "lora_layers": 15,
            "instruction_separator": ": ",
            "teacher": "all-minilm-l6-v2",
        },
        # Sized for about half an hour on 2 cores with bf16 (benchmarks/results/corpus_adapt.md):
        # 768 queries, 24 steps of 32, so about one epoch of the pairs the round trip keeps.
        "synthetic": {
            "steps": 24,
            "batch_size": 32,
            "micro_batch_size": 16,
            "max_length": 128,
            "lr": 1e-4,
            "warmup_steps": 2,
            "checkpoint_every": 10,
            "gradient_checkpointing": False,
            "autocast": "auto",
            "instruction_separator": ": ",  # as the built-in encoder was trained and is queried
            "passages": 768,
        },
    },
}


def check_type(stage: str, key: str, value: Any, hint: Any) -> None:
    """A TOML value of the wrong type (steps = "a") is a one-line error, not a TypeError later."""
    allowed = typing.get_args(hint) or (hint,)
    names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
    if float in allowed:
        allowed = (*allowed, int)  # lr = 1 means 1.0
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise RagkitError(f"{stage}: {key} must be {names}, got {value!r}")


def read_toml(path: Path, stages: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """An adapt.toml: one table per stage, e.g. [mntp] steps = 500."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RagkitError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise RagkitError(f"{path}: invalid TOML: {e}") from None
    for key, value in data.items():
        if key not in stages or not isinstance(value, dict):
            raise RagkitError(f"{path}: unknown table [{key}]; use [{'], ['.join(stages)}]")
    return data
