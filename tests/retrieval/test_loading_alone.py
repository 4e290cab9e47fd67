"""The primitives sit below `ragkit.index`: adapt and eval use them without loading the index or FAISS."""

from __future__ import annotations

import subprocess
import sys


def test_the_primitives_load_without_the_index_or_faiss():
    modules = ", ".join(f"ragkit.retrieval.{m}" for m in ("chunking", "lexical", "fusion", "sentences"))
    code = (
        f"import sys, {modules}; "
        "print(','.join(m for m in sys.modules if m == 'faiss' or m.startswith('ragkit.index')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
