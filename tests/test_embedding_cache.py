"""The one vector cache: blocks keyed by model and texts, shared by evaluation and distillation."""

from __future__ import annotations

import numpy as np

from ragkit import embedding_cache


def test_blocks_are_reused_by_key_and_texts_and_the_old_eval_cache_moves_here(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path))
    old = tmp_path / "eval" / "embeddings"
    old.mkdir(parents=True)
    (old / "kept.npy").write_bytes(b"x")
    assert embedding_cache.cache_dir() == tmp_path / "embeddings"
    assert (tmp_path / "embeddings" / "kept.npy").is_file() and not old.exists()  # ragkit 0.5's vectors kept
    monkeypatch.setattr(embedding_cache, "BLOCK", 2)
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    texts = ["a", "bb", "ccc"]
    first = embedding_cache.cached_embeddings("model-1", texts, embed)
    again = embedding_cache.cached_embeddings("model-1", ["a", "bb", "dddd"], embed)
    other = embedding_cache.cached_embeddings("model-2", texts, embed)
    assert calls == [["a", "bb"], ["ccc"], ["dddd"], ["a", "bb"], ["ccc"]]  # a changed text: its block only
    np.testing.assert_array_equal(first[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(again[:, 0], [1, 2, 4])
    np.testing.assert_array_equal(other, first)
