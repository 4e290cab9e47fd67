"""Supervised contrastive training data: (query, positive, hard negatives) with a task instruction.

Only the query carries the instruction (LLM2Vec, following E5-Mistral); documents are embedded
plain, so an index built once serves every task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The instructions of LLM2Vec's public E5 training mix, by file name (e.g. msmarco_passage.jsonl).
# Datasets with two take them in turn, row by row, as llm2vec's E5 loader does.
E5_INSTRUCTIONS: dict[str, str | tuple[str, str]] = {
    "allnli": (
        "Given a premise, retrieve a hypothesis that is entailed by the premise",
        "Retrieve semantically similar text",
    ),
    "dureader": "Given a Chinese search query, retrieve web passages that answer the question",
    "eli5_question_answer": (
        "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum"
    ),
    "fever": "Given a claim, retrieve documents that support or refute the claim",
    "hotpot_qa": "Given a multi-hop question, retrieve documents that can help answer the question",
    "miracl": "Given a question, retrieve Wikipedia passages that answer the question",
    "mrtydi": "Given a question, retrieve Wikipedia passages that answer the question",
    "msmarco_passage": "Given a web search query, retrieve relevant passages that answer the query",
    "msmarco_document": "Given a web search query, retrieve relevant documents that answer the query",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question",
    "quora_duplicates": (
        "Given a question, retrieve questions that are semantically equivalent to the given question",
        "Find questions that have the same meaning as the input question",
    ),
    "squad": "Retrieve Wikipedia passages that answer the question",
    "t2ranking": "Given a Chinese search query, retrieve web passages that answer the question",
    "trivia_qa": "Retrieve Wikipedia passages that answer the question",
}

DEFAULT_INSTRUCTION = "Given a query, retrieve passages relevant to it"


@dataclass
class Example:
    """One supervised training example: a query, its positive, hard negatives and the instruction."""

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    instruction: str = DEFAULT_INSTRUCTION
    dataset: str = ""  # the file (E5 dataset) it came from; batches may be drawn from one at a time


def e5_instruction(dataset: str, row: int) -> str | None:
    """The E5 mix's instruction for `row` (0-based) of `dataset`, or None if it is no E5 dataset."""
    instruction = E5_INSTRUCTIONS.get(dataset)
    if isinstance(instruction, tuple):
        return instruction[row % len(instruction)]
    return instruction


def query_prompt(instruction: str, separator: str = ": ") -> str:
    """An instruction as the prompt before a query: LLM2Vec's inference format ends it with ": ";
    its training data (llm2vec's E5 loader) with "; "."""
    return instruction.strip().rstrip(":;") + separator
