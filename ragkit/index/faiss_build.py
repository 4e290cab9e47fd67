"""Which faiss is loaded: faiss-cpu and faiss-gpu both install the module `faiss`, so ask it at run time."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11")


@dataclass(frozen=True)
class FaissBuild:
    """Which faiss is installed and what it can use: version, GPU support, the wheels that provide it."""

    version: str
    gpu_support: bool  # compiled with GPU code (a faiss-gpu wheel)
    num_gpus: int  # GPUs that build can use now
    distributions: tuple[str, ...]  # installed wheels that provide `faiss`
    compile_options: str

    @property
    def uses_gpu(self) -> bool:
        """Whether indexes are built on a GPU: a GPU build and at least one GPU visible."""
        return self.gpu_support and self.num_gpus > 0

    def describe(self) -> str:
        """One line for reports and `ragkit info`."""
        kind = "GPU" if self.gpu_support else "CPU"
        where = f"{self.num_gpus} GPU(s) visible" if self.gpu_support else "CPU only"
        wheels = ", ".join(self.distributions) or "unknown wheel"
        text = f"faiss {self.version} ({kind} build from {wheels}; {where}; {self.compile_options.strip()})"
        if len(self.distributions) > 1:
            text += " - warning: several faiss wheels are installed and overwrite each other; keep one"
        return text


def faiss_build() -> FaissBuild:
    """The installed faiss, as a `FaissBuild` (reports say which build made an index)."""
    import faiss

    installed = []
    for dist in _DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(dist)
            installed.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    gpu_support = hasattr(faiss, "StandardGpuResources")
    return FaissBuild(
        version=faiss.__version__,
        gpu_support=gpu_support,
        num_gpus=faiss.get_num_gpus() if gpu_support else 0,
        distributions=tuple(installed),
        compile_options=faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else "",
    )
