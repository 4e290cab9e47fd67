"""Retrieval evaluation with mteb's metrics: MTEB tasks by name, local BEIR folders by path."""

from ragkit.eval.beir import BeirSplit, read_beir
from ragkit.eval.models import RagkitModel, SentenceTransformerModel
from ragkit.eval.run import METRICS, TaskScore, evaluate
from ragkit.eval.search import DenseSearch, IndexSearch
from ragkit.eval.sts import LocalSTSTask, sts_spearman
from ragkit.eval.tasks import LocalRetrievalTask, load_task, subsample

__all__ = [
    "METRICS",
    "BeirSplit",
    "DenseSearch",
    "IndexSearch",
    "LocalRetrievalTask",
    "LocalSTSTask",
    "RagkitModel",
    "SentenceTransformerModel",
    "TaskScore",
    "evaluate",
    "load_task",
    "read_beir",
    "sts_spearman",
    "subsample",
]
