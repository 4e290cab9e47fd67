"""`ragkit info`: versions, devices, the faiss build and the built-in models."""

from __future__ import annotations

from ragkit.cli.options import console


def info() -> None:
    """Versions, devices, the faiss build and the built-in models."""
    import torch
    import transformers

    from ragkit import __version__
    from ragkit.encoders import BUILTIN_ENCODERS, BUILTIN_MODELS, VALIDATED_MODEL_TYPES
    from ragkit.index import faiss_build
    from ragkit.paths import ragkit_home

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    console.print(f"ragkit {__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    console.print(f"GPU: {gpu}")
    console.print(faiss_build().describe())
    console.print(f"cache: {ragkit_home()}")
    console.print(f"built-in models: {', '.join(BUILTIN_MODELS)}; encoders: {', '.join(BUILTIN_ENCODERS)}")
    console.print(f"bidirectional attention validated for: {', '.join(sorted(VALIDATED_MODEL_TYPES))}")
