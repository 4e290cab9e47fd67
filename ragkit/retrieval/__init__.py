"""The primitives retrieval is made of, used by index, adapt and eval alike: documents cut into chunks
of the encoder's tokens, sentences, BM25 over texts, and the fusion of two rankings.

Each module loads on its own and none loads FAISS or `ragkit.index`: BM25 for `ragkit eval --bm25` or a
distillation teacher comes without the index's build side.
"""
