"""The one document text: every path that embeds or ranks a document sees the same string."""

from __future__ import annotations

import pytest
from helpers import tiny_tokenizer

from ragkit.corpus import Document, document_text


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("", "Just text.", "Just text."),
        ("Rivers", "The Nile is long.", "Rivers\nThe Nile is long."),
        ("Cats", "# Cats\nThe cat sat.", "# Cats\nThe cat sat."),  # Markdown: not the title twice
        ("Cats", "\n\n## Cats \nThe cat sat.", "\n\n## Cats \nThe cat sat."),
        # Cranfield's abstracts open with their title in running text: the title stays (as in mteb's BM25)
        (
            "wing flow .",
            "wing flow . an experimental study",
            "wing flow .\nwing flow . an experimental study",
        ),
        ("  padded  ", "text", "padded\ntext"),
    ],
)
def test_document_text(title, text, expected):
    assert document_text(title, text) == expected
    assert Document("id", text, title).embedding_text() == expected


def test_index_adapt_eval_and_bm25_all_call_it(tmp_path):
    from datasets import Dataset

    from ragkit.adapt.data import read_texts
    from ragkit.eval.search import document_texts
    from ragkit.retrieval.chunking import ChunkingConfig, chunk_document

    docs = [Document("a", "# Cats\nThe cat sat.", "Cats"), Document("b", "The Nile is long.", "Rivers")]
    expected = [d.embedding_text() for d in docs]
    corpus = Dataset.from_dict(
        {"id": ["a", "b"], "title": [d.title for d in docs], "text": [d.text for d in docs]}
    )
    assert document_texts(corpus) == expected  # eval and BM25
    chunks = [chunk_document(d, tiny_tokenizer(), ChunkingConfig(10_000, 0))[0] for d in docs]
    assert [c.embedding_text() for c in chunks] == expected  # index
    (tmp_path / "cats.md").write_text(docs[0].text)
    (tmp_path / "nile.jsonl").write_text('{"title": "Rivers", "text": "The Nile is long."}\n')
    assert sorted(read_texts(str(tmp_path))) == sorted(expected)  # adapt --corpus
