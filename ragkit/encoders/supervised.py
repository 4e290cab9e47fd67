"""Supervised contrastive training data: (query, positive, hard negatives) with a task instruction.

Only the query carries the instruction (LLM2Vec, following E5-Mistral); documents are embedded
plain, so an index built once serves every task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The instructions of LLM2Vec's public E5 training mix, by file name (e.g. msmarco_passage.jsonl).
E5_INSTRUCTIONS: dict[str, str] = {
    "allnli": "Given a premise, retrieve a hypothesis that is entailed by the premise",
    "eli5_question_answer": (
        "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum"
    ),
    "fever": "Given a claim, retrieve documents that support or refute the claim",
    "hotpot_qa": "Given a multi-hop question, retrieve documents that can help answer the question",
    "msmarco_passage": "Given a web search query, retrieve relevant passages that answer the query",
    "msmarco_document": "Given a web search query, retrieve relevant documents that answer the query",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question",
    "quora_duplicates": (
        "Given a question, retrieve questions that are semantically equivalent to the given question"
    ),
    "squad": "Retrieve Wikipedia passages that answer the question",
    "trivia_qa": "Retrieve Wikipedia passages that answer the question",
}

DEFAULT_INSTRUCTION = "Given a query, retrieve passages relevant to it"


@dataclass
class Example:
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    instruction: str = DEFAULT_INSTRUCTION


def query_prompt(instruction: str) -> str:
    """LLM2Vec's query format: the instruction, then a colon and a space before the text."""
    return instruction.strip().rstrip(":") + ": "
