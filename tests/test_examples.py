"""The quickstart's example corpus with the real SmolLM2 weights: index, query, and the RAG example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ragkit_command, requires_smollm2

from ragkit import Encoder
from ragkit.index import Index, Retriever

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTRUCTION = "Given a question, retrieve a passage that answers it: "
QUESTIONS = {
    "how do plants make energy from sunlight?": "photosynthesis.md",
    "storming of the Bastille": "french-revolution.md",
    "what ratio of coffee to water": "coffee.md",
    "can light escape gravity": "black-holes.md",
    "who created the language that uses indentation": "python.md",
    "how often should I oil my chain": "bicycle.md",
    "what is the waggle dance": "honey-bees.md",
    "eruption that buried Pompeii": "volcanoes.md",
}


@requires_smollm2
def test_smollm2_with_a_query_instruction_answers_the_example_questions(smollm2, tmp_path):
    smollm2.config.query_instruction = INSTRUCTION
    try:
        report = Index.build(EXAMPLES / "corpus", smollm2, tmp_path / "idx", show_progress=False)
        retriever = Retriever.load(tmp_path / "idx", encoder=smollm2)
        found = [hits[0].path for hits in retriever.search(list(QUESTIONS), k=1, mode="dense")]
    finally:
        smollm2.config.query_instruction = None
    assert report.counts.files == 8
    # Measured: 8 of 8 with the instruction (4 of 8 without it, untrained bidirectional SmolLM2).
    assert sum(f == p for f, p in zip(found, QUESTIONS.values(), strict=True)) >= 7


@requires_smollm2
def test_the_default_encoder_answers_the_example_questions_with_its_own_instruction(tmp_path):
    encoder = Encoder.load()  # llm2vec-smollm2-135m, what the quickstart indexes with
    Index.build(EXAMPLES / "corpus", encoder, tmp_path / "idx", show_progress=False)
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    found = [hits[0].path for hits in retriever.search(list(QUESTIONS), k=1, mode="dense")]
    # Measured: 8 of 8 (6 of 8 with no instruction at all, where the unadapted SmolLM2 gets 4).
    assert sum(f == p for f, p in zip(found, QUESTIONS.values(), strict=True)) >= 7
    # Hybrid search with the index's BM25 part too: measured 8 of 8, as BM25 alone.
    found = [hits[0].path for hits in retriever.search(list(QUESTIONS), k=1, mode="hybrid")]
    assert sum(f == p for f, p in zip(found, QUESTIONS.values(), strict=True)) >= 7


@requires_smollm2
def test_rag_example_retrieves_and_generates(tmp_path):
    index_dir = tmp_path / "idx"
    subprocess.run(ragkit_command("index", str(EXAMPLES / "corpus"), "--index", str(index_dir)),
                   check=True, capture_output=True)  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "rag.py"), "What happened on 14 July 1789?"],
        env={**os.environ, "RAGKIT_INDEX": str(index_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "retrieved: french-revolution.md" in result.stdout
    answer = result.stdout.split("answer:", 1)[1].strip()
    assert answer  # the generator produced text
