"""`import ragkit.index` is cheap: the server, evaluation and a part such as BM25 load what they use,
not the build side (FAISS building, calibration, the query generator, Ray)."""

from __future__ import annotations

import pytest
from helpers import modules_after_import

BUILD_SIDE = (
    "ragkit.index.build",
    "ragkit.index.calibration",
    "ragkit.querygen.generate",
    "ragkit.index.ray_embed",
)


def test_the_search_side_loads_without_the_build_side():
    # One fresh interpreter imports all three (torch loads once): if none of the build side is loaded
    # after all of them, none of them loaded it.
    loaded = modules_after_import("ragkit.serve.app", "ragkit.eval.search", "ragkit.retrieval.lexical")
    assert "ragkit.serve.app" in loaded  # the import ran
    assert loaded.isdisjoint(BUILD_SIDE)


def test_the_package_names_load_on_first_use():
    import ragkit.index as index

    assert index.Retriever.__module__ == "ragkit.index.retriever"
    assert index.Index.__module__ == "ragkit.index.build" and set(index.__all__) == {
        *index._WHERE,
        "FaissBuild",
        "faiss_build",
    }
    import ragkit.index.faiss_build  # noqa: F401  # the module of the same name does not shadow it

    assert callable(index.faiss_build) and index.faiss_build().describe()
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        index.Nothing  # noqa: B018
