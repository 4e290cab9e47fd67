"""Readers and a writer on one index: threads keep answering from a whole index while another process
updates it, and `refresh()` moves them to the new version once it is swapped in."""

from __future__ import annotations

import subprocess
import threading

from helpers import TRAIN_SENTENCES, ragkit_command, tiny_encoder

from ragkit import Encoder
from ragkit.index import Index, Retriever


def test_readers_answer_from_a_complete_index_while_another_process_updates_it(tmp_path):
    tiny_encoder().save(tmp_path / "encoder")
    encoder = Encoder.load(tmp_path / "encoder")
    corpus, index_dir = tmp_path / "corpus", tmp_path / "idx"
    corpus.mkdir()
    original = {f"doc{i:02}.txt": TRAIN_SENTENCES[i] for i in range(24)}
    for name, text in original.items():
        (corpus / name).write_text(text)
    Index.build(corpus, encoder, index_dir, show_progress=False)
    retriever = Retriever.load(index_dir, encoder=encoder)

    # The update: every file rewritten, twelve more added; `ragkit index` runs in another process.
    updated = {name: f"Updated: {text}" for name, text in original.items()}
    updated |= {f"new{i:02}.txt": TRAIN_SENTENCES[24 + i] for i in range(12)}
    for name, text in updated.items():
        (corpus / name).write_text(text)
    command = ["index", str(corpus), "--index", str(index_dir), "--model", str(tmp_path / "encoder")]
    writer = subprocess.Popen(
        ragkit_command(*command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[BaseException] = []
    answers = [0] * 8

    def read(slot: int) -> None:
        while writer.poll() is None or answers[slot] < 3:
            try:
                for mode in ("dense", "bm25", "hybrid"):
                    for hit in retriever.search("a cat reads about old maps", k=5, mode=mode):
                        assert hit.text == original[hit.path]  # the loaded version, whole, never mixed
                answers[slot] += 1
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=read, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.wait() == 0, writer.stderr.read()
    assert not errors, errors[0]
    assert all(answers)

    assert retriever.refresh() is True
    assert retriever.refresh() is False  # nothing new since
    hits = retriever.search("a cat reads about old maps", k=36, mode="bm25")
    assert {h.path for h in hits} <= set(updated) and all(h.text == updated[h.path] for h in hits)
    assert retriever.store.counts().chunks == 36
