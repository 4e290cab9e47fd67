"""Chunking by the encoder's tokens: size, overlap, offsets."""

from __future__ import annotations

import pytest
from helpers import SENTENCES, tiny_tokenizer

from ragkit import RagkitError
from ragkit.corpus import Document
from ragkit.retrieval.chunking import ChunkingConfig, chunk_document

TEXT = " ".join(SENTENCES * 3)


def test_chunks_have_the_size_and_overlap_asked_for_and_cover_the_text():
    tokenizer = tiny_tokenizer()
    doc = Document("d", TEXT, "Title", {"k": "v"})
    chunks = chunk_document(doc, tokenizer, ChunkingConfig(chunk_size=16, overlap=4))
    offsets = tokenizer(TEXT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert len(chunks) == -(-(len(offsets) - 4) // 12)  # ceil((n - overlap) / step)
    for i, chunk in enumerate(chunks):
        first = 12 * i
        window = offsets[first : first + 16]
        assert (chunk.start, chunk.end) == (window[0][0], window[-1][1])
        assert chunk.text == TEXT[chunk.start : chunk.end] and chunk.tokens == len(window)
        assert (chunk.doc_id, chunk.title, chunk.metadata) == ("d", "Title", {"k": "v"})
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT.rstrip())
    # neighbours share exactly `overlap` tokens
    assert chunks[1].start == offsets[12][0] and chunks[0].end == offsets[15][1]


def test_a_short_document_is_one_chunk_and_embeds_with_its_title():
    chunks = chunk_document(Document("d", "Short.", "A title"), tiny_tokenizer(), ChunkingConfig())
    assert len(chunks) == 1 and chunks[0].text == "Short."
    assert chunks[0].embedding_text() == "A title\nShort."


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (8, 8), (8, -1)])
def test_bad_chunking_is_refused(size, overlap):
    with pytest.raises(RagkitError):
        ChunkingConfig(size, overlap)


@pytest.mark.parametrize("separator", ["\n", "\n\n  \n", " "])
def test_a_long_text_tokenized_in_blocks_has_the_offsets_of_one_call(separator, monkeypatch):
    from ragkit.retrieval import chunking

    tokenizer = tiny_tokenizer()
    text = separator.join(SENTENCES * 40)  # ~19,000 characters
    whole = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    monkeypatch.setattr(chunking, "BLOCK_CHARS", 1000)  # ~20 blocks
    assert chunking.token_offsets(text, tokenizer).tolist() == [list(pair) for pair in whole]
    chunks = chunk_document(Document("d", text), tokenizer, ChunkingConfig(chunk_size=64, overlap=8))
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert sum(c.tokens for c in chunks) == len(whole) + 8 * (len(chunks) - 1)
