"""The primitives sit below `ragkit.index`: adapt and eval use them without loading the index or FAISS."""

from __future__ import annotations

from helpers import modules_after_import


def test_the_primitives_load_without_the_index_or_faiss():
    loaded = modules_after_import(
        *(f"ragkit.retrieval.{m}" for m in ("chunking", "lexical", "fusion", "sentences"))
    )
    assert "ragkit.retrieval.sentences" in loaded  # the import ran
    assert {m for m in loaded if m == "faiss" or m.startswith("ragkit.index")} == set()
