"""`evaluate()`: every system on every task through `mteb.evaluate`, scores as mteb computes them."""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import mteb
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.types import EncodeKwargs
from rich.console import Console

from ragkit.errors import RagkitError, first_line
from ragkit.eval.tasks import Subsample, subsample

METRICS = {"ndcg_at_10": "nDCG@10", "mrr_at_10": "MRR@10", "recall_at_100": "R@100", "map_at_100": "MAP@100"}


@dataclass
class TaskScore:
    """One system's scores on one task split."""

    system: str
    task: str
    split: str
    scores: dict[str, float]  # METRICS, as mteb reports them (0..1)
    queries: int
    documents: int
    seconds: float
    subsample: Subsample | None = None  # set when the corpus was cut to --max-docs
    cached_documents: int = 0  # corpus vectors read from the embedding cache
    results_file: str = ""  # mteb's TaskResult JSON
    predictions_file: str = ""  # the rankings, when asked for (mteb's predictions format)

    @property
    def ndcg_at_10(self) -> float:
        """The headline metric."""
        return self.scores["ndcg_at_10"]


def evaluate(
    systems: list,
    tasks: list[AbsTaskRetrieval],
    *,
    output: str | Path | None = "ragkit-eval",
    max_docs: int | None = None,
    seed: int = 0,
    predictions: bool = False,
    console: Console | None = None,
) -> list[TaskScore]:
    """Score each system (an mteb `SearchProtocol` or `EncoderProtocol`) on each retrieval task.

    With `max_docs`, a larger corpus is subsampled to that size, keeping every judged document; the
    scores are then flagged, as they are not comparable with full-corpus numbers. With
    `predictions`, each system's rankings are saved next to its mteb results JSON (mteb's format).
    """
    console = console or Console(stderr=True)
    output = Path(output) if output else None
    rows = []
    for task in tasks:
        name = task.metadata.name
        console.print(f"[bold]{name}[/]: loading")
        _load(task)
        cut = subsample(task, max_docs, seed) if max_docs else {}
        if cut:
            console.print(f"[yellow]{name}: {next(iter(cut.values())).describe()}[/]")
        for system in systems:
            label = getattr(system, "label", system.mteb_model_meta.name)
            meta = system.mteb_model_meta
            folder = None
            if output:  # mteb's results layout: <model name>/<revision>/<task>.json
                folder = output / meta.model_name_as_path() / (meta.revision or "no_revision_available")
                folder.mkdir(parents=True, exist_ok=True)
            console.print(f"[bold]{name}[/] · {label}: indexing and searching")
            start = time.perf_counter()
            with _quiet_mteb():
                result = mteb.evaluate(
                    system,
                    task,
                    cache=None,
                    overwrite_strategy="always",
                    show_progress_bar=False,
                    encode_kwargs=EncodeKwargs(show_progress_bar=False),
                    prediction_folder=folder if predictions else None,
                )
            seconds = time.perf_counter() - start
            task_result = result.task_results[0]
            for split, scores_list in task_result.scores.items():
                data = task.dataset["default"][split] if "default" in task.dataset else None
                scores = scores_list[0]
                row = TaskScore(
                    system=label,
                    task=name,
                    split=split,
                    scores={key: float(scores[key]) for key in METRICS},
                    queries=len(data["queries"]) if data else 0,
                    documents=len(data["corpus"]) if data else 0,
                    seconds=seconds,
                    subsample=cut.get(f"default/{split}"),
                    cached_documents=getattr(system, "cached_documents", 0),
                )
                rows.append(row)
                console.print(_scored(row))
            if folder:
                task_result.to_disk(folder / f"{name}.json")
                (folder / "model_meta.json").write_text(json.dumps(meta.to_dict(), indent=2, default=str))
                for row in rows[-len(task_result.scores) :]:
                    row.results_file = str(folder / f"{name}.json")
                    if predictions:
                        row.predictions_file = str(folder / f"{name}_predictions.json")
    if output:
        summary = [{**asdict(r), "subsample": asdict(r.subsample) if r.subsample else None} for r in rows]
        (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows


class _quiet_mteb:
    """mteb logs and warns per phase; ragkit prints its own lines, so keep the terminal readable."""

    def __enter__(self):
        self.logger = logging.getLogger("mteb")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self.warnings.__exit__(*exc)
        self.logger.setLevel(self.level)


def _load(task: AbsTaskRetrieval) -> None:
    """The task's data; a task that cannot be loaded (the Hub unreachable, a dataset gone) is a
    one-line error that names it."""
    try:
        task.load_data()
    except RagkitError:
        raise
    except Exception as e:
        reason = f"{type(e).__name__}: {first_line(e)}"
        raise RagkitError(
            f"could not load task {task.metadata.name}: {reason}; offline, pass a local BEIR folder instead"
        ) from e


def _scored(row: TaskScore) -> str:
    """The line `evaluate` prints for one system on one task split."""
    cached = f", {row.cached_documents} document vectors from cache" if row.cached_documents else ""
    return (
        f"  nDCG@10 {row.ndcg_at_10:.4f} on {row.queries} queries, {row.documents} documents"
        f" ({row.seconds:.1f} s{cached})"
    )
