import importlib.metadata

import faiss

from ragkit.index import faiss_build


def test_reports_the_loaded_faiss_build():
    build = faiss_build()
    assert build.version == faiss.__version__
    assert build.gpu_support == hasattr(faiss, "StandardGpuResources")
    if not build.gpu_support:  # CPU wheels (CI): no GPU use, and the wheel is named
        assert not build.uses_gpu and build.num_gpus == 0
        assert "CPU build" in build.describe()
    for dist in build.distributions:
        importlib.metadata.distribution(dist)  # every reported wheel really is installed
