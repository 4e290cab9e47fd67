"""Semantic similarity (STS) from local files, scored by mteb: Spearman of cosine vs gold scores.

A second view of an encoder next to retrieval: STS-B (`sts-test.csv`) and SICK-R
(`SICK_test_annotated.txt`) in their original formats, as in ../shared/data/sts.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import mteb
from datasets import Dataset, DatasetDict
from mteb.abstasks.sts import AbsTaskSTS

from ragkit.errors import RagkitError
from ragkit.eval.tasks import LocalTask, local_metadata


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float], tuple[float, float]]:
    """Sentence pairs, gold scores and the score range of an STS-B .csv or a SICK .txt file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RagkitError(f"STS file {path} does not exist")
    first, second, scores = [], [], []
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        sick = path.name.startswith("SICK")
        for line_no, row in enumerate(rows, 1):
            if sick and line_no == 1:
                continue  # header: pair_ID, sentence_A, sentence_B, relatedness_score, ...
            try:
                a, b, score = (row[1], row[2], row[3]) if sick else (row[5], row[6], row[4])
                scores.append(float(score))
            except (IndexError, ValueError) as e:
                raise RagkitError(f"{path}:{line_no}: not an STS-B or SICK row") from e
            first.append(a)
            second.append(b)
    return first, second, scores, (1.0, 5.0) if sick else (0.0, 5.0)


# LLM2Vec's instruction for every STS task, on both sentences.
STS_INSTRUCTION = "Retrieve semantically similar text"


class LocalSTSTask(LocalTask, AbsTaskSTS):
    """An STS folder as an mteb STS task (Spearman of cosine against human scores)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.metadata = local_metadata(
            self.path,
            self.path.stem,
            description=f"Local STS file {self.path}",
            type="STS",
            main_score="cosine_spearman",
            eval_splits=["test"],
            prompt=STS_INSTRUCTION,
        )
        super().__init__()

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the pairs and scores once."""
        if self.data_loaded:
            return
        first, second, scores, (low, high) = read_sts(self.path)
        self.min_score, self.max_score = low, high  # type: ignore[assignment]  # mteb says int; any range works
        pairs = Dataset.from_dict({"sentence1": first, "sentence2": second, "score": scores})
        self.dataset = DatasetDict({"test": pairs})
        self.data_loaded = True


def sts_spearman(model, path: str | Path) -> float:
    """Spearman correlation (x100 is how papers print it) of an mteb encoder's cosines on an STS file."""
    result = mteb.evaluate(model, LocalSTSTask(path), cache=None, show_progress_bar=False)
    return float(result.task_results[0].scores["test"][0]["cosine_spearman"])
