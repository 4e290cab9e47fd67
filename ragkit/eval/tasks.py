"""Retrieval tasks: MTEB's by name, local BEIR folders by path, both as mteb `AbsTaskRetrieval`s.

A local folder goes through mteb's own task class, so its scores are mteb's metrics computed the
same way as for any MTEB task.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata

from ragkit.errors import RagkitError
from ragkit.eval.beir import is_beir_folder, read_beir

GENERIC_QUERY_INSTRUCTION = "Given a query, retrieve documents relevant to it"


def local_metadata(path: Path, name: str, **fields: Any) -> TaskMetadata:
    """mteb task metadata for a local file or folder: English text, nothing to download."""
    return TaskMetadata(
        name=name,
        reference=None,
        dataset={"path": str(path), "revision": "local"},
        category="t2t",
        modalities=["text"],
        eval_langs=["eng-Latn"],
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation=None,
        **fields,
    )


class LocalTask:
    """Metadata per instance (mteb tasks keep theirs on the class), which unloading must keep."""

    dataset: Any  # the mteb task's loaded data, None when unloaded
    data_loaded: bool

    def unload_data(self) -> None:
        """Drop the loaded data (mteb calls it between tasks)."""
        self.dataset = None
        self.data_loaded = False


class LocalRetrievalTask(LocalTask, AbsTaskRetrieval):
    """A BEIR folder on disk as an mteb retrieval task; nothing is fetched from the Hub.

    Query and document ids may collide (Cranfield numbers both from 1), so identical ids are kept:
    `ignore_identical_ids` stays off, as mteb's default.
    """

    ignore_identical_ids = False

    def __init__(self, folder: str | Path, split: str | None = None, query_instruction: str | None = None):
        self.folder = Path(folder).expanduser().resolve()
        self.split = split
        name = self.folder.name
        self.metadata = local_metadata(
            self.folder,
            name,
            description=f"Local BEIR folder {self.folder}",
            type="Retrieval",
            main_score="ndcg_at_10",
            eval_splits=[split or "test"],
            prompt={"query": query_instruction or mteb_instruction(name) or GENERIC_QUERY_INSTRUCTION},
        )
        super().__init__()

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the BEIR split once, subsampled as asked."""
        if self.data_loaded:
            return
        data = read_beir(self.folder, self.split)
        self.metadata.eval_splits = [data.split]
        queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
        corpus = Dataset.from_list(data.corpus)
        split = RetrievalSplitData(corpus=corpus, queries=queries, relevant_docs=data.qrels, top_ranked=None)
        self.dataset = {"default": {data.split: split}}
        self.data_loaded = True


def mteb_instruction(folder_name: str) -> str | None:
    """The query instruction of the MTEB task a folder is a copy of ("scifact" -> SciFact's), if any."""
    import mteb

    stem = folder_name.lower().split("-")[0]
    for task in mteb.get_tasks(task_types=["Retrieval"], languages=["eng"]):
        if task.metadata.name.lower() == stem and isinstance(task.metadata.prompt, dict):
            return task.metadata.prompt.get("query")
    return None


def load_task(spec: str | Path, split: str | None = None, query_instruction: str | None = None):
    """A path to a BEIR folder, or the name of an MTEB retrieval task (downloaded by mteb)."""
    import mteb

    path = Path(spec).expanduser()
    if path.exists():
        if not is_beir_folder(path):
            raise RagkitError(
                f"{path} is not a BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv)"
            )
        return LocalRetrievalTask(path, split, query_instruction)
    if "/" in str(spec) or str(spec).startswith("."):
        raise RagkitError(f"task folder {path} does not exist")
    try:
        task = mteb.get_task(str(spec))
    except KeyError:
        names = [t.metadata.name for t in mteb.get_tasks(task_types=["Retrieval"])]
        close = difflib.get_close_matches(str(spec), names, n=3, cutoff=0.6) or difflib.get_close_matches(
            str(spec).lower(), [n.lower() for n in names], n=3, cutoff=0.6
        )
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RagkitError(
            f"unknown task {spec!r}: {hint}give an MTEB retrieval task name or a BEIR folder path"
        ) from None
    if not isinstance(task, AbsTaskRetrieval):
        raise RagkitError(f"{spec} is a {task.metadata.type} task; ragkit scores retrieval tasks")
    if split:
        task.metadata.eval_splits = [split]
    return task


@dataclass
class Subsample:
    """How a corpus was subsampled: kept and total documents, all judged ones kept."""

    kept: int
    total: int
    judged: int  # all judged documents are always kept

    def describe(self) -> str:
        """One line for reports."""
        return f"corpus subsampled: {self.kept} of {self.total} documents, all {self.judged} judged ones kept"


def subsample(task: AbsTaskRetrieval, max_docs: int, seed: int = 0) -> dict[str, Subsample]:
    """Cut each split's corpus to `max_docs` documents, keeping every judged one.

    Scores on a subsample are higher than on the full corpus (fewer distractors); they compare
    systems with each other, not with published numbers.
    """
    task.load_data()
    task.convert_v1_dataset_format_to_v2(num_proc=None)
    done = {}
    for subset, data_splits in task.dataset.items():
        for split, data in data_splits.items():
            corpus = data["corpus"]
            if len(corpus) <= max_docs:
                continue
            judged = {doc for docs in data["relevant_docs"].values() for doc in docs}
            ids = corpus["id"]
            keep = [i for i, doc_id in enumerate(ids) if doc_id in judged]
            others = np.array([i for i, doc_id in enumerate(ids) if doc_id not in judged])
            room = max(max_docs - len(keep), 0)
            extra = np.random.default_rng(seed).choice(others, min(room, len(others)), replace=False)
            rows = sorted(keep + extra.tolist())
            if len(rows) == len(ids):  # every document is judged: nothing was cut, the scores are full ones
                continue
            data["corpus"] = corpus.select(rows)
            done[f"{subset}/{split}"] = Subsample(len(rows), len(ids), len(keep))
    return done
