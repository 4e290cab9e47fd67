"""IVF inverted lists kept on disk (faiss `OnDiskInvertedLists`): indexes larger than memory.

An on-disk IVF index is two files per generation: `index-<g>.faiss` (the coarse quantizer and where
each list lies) and `index-<g>.ivfdata` (the lists themselves, memory-mapped: a search pages in only
the lists it probes, and the OS may drop them again). A build fills the lists a block of vectors at a
time into a scratch file and copies them, compacted, into `index-<g>.ivfdata`; an update copies the
previous generation's lists into the next one's file the same way before it adds and removes
vectors, so readers of the previous generation keep an untouched file. Both copies stream list by
list through the mappings, never holding the lists in memory.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

TRAINING_BYTES = 1 << 30  # an on-disk IVF index trains on at most 1 GiB of vectors (and 39 per list)


def ivfdata_file(generation: int) -> str:
    """The on-disk inverted lists of one generation, beside its `index-<g>.faiss`."""
    return f"index-{generation}.ivfdata"


def read_index(path: Path) -> faiss.Index:
    """Read an index file; an on-disk IVF index maps the lists file beside it, wherever the index
    directory has been moved since it was written."""
    with _native_stdout_silenced():  # faiss prints the file it maps to stdout
        return faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)


def is_on_disk(index: faiss.Index) -> bool:
    """Whether `index` keeps its inverted lists in a memory-mapped file."""
    ivf = faiss.try_extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    return isinstance(lists, faiss.OnDiskInvertedLists)


def lists_to_file(index: faiss.Index, path: Path) -> None:
    """Move an IVF index's inverted lists into a new file `path` (compacted: each list exactly its
    size), list by list; from then on the index's vectors are added to and removed from that file."""
    ivf = faiss.extract_index_ivf(index)
    path.unlink(missing_ok=True)  # what an interrupted build or update left
    on_disk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(path))
    if ivf.ntotal:
        sources = faiss.InvertedListsPtrVector()
        sources.push_back(ivf.invlists)
        with _native_stdout_silenced():
            on_disk.merge_from_multiple(sources.data(), sources.size(), False)
    ivf.replace_invlists(on_disk, True)  # the index owns (and unmaps) its lists from now on
    on_disk.this.disown()


def fill(index: faiss.Index, blocks: Iterable[tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Add (vectors, ids) blocks to an empty trained IVF index with its lists on disk: they grow in a
    scratch file beside `path` (faiss doubles a list's slot as it fills), then are copied, compacted,
    into `path`. Memory: one block."""
    scratch = path.with_name(path.name + ".fill")
    lists_to_file(index, scratch)
    for vectors, ids in blocks:
        add(index, vectors, ids)
    lists_to_file(index, path)
    scratch.unlink()


def add(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """`index.add_with_ids`, quiet when its lists are on disk (faiss reports each growth of the file)."""
    if not is_on_disk(index):
        index.add_with_ids(vectors, ids)
        return
    with _native_stdout_silenced():
        index.add_with_ids(vectors, ids)


def disk_bytes(path: Path) -> int:
    """Bytes a file takes on disk (a grown lists file is sparse)."""
    return path.stat().st_blocks * 512 if path.exists() else 0


@contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Send what C++ code prints to stdout to /dev/null meanwhile: ragkit's stdout is for results
    (`ragkit query --json`)."""
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)  # what C stdio buffered goes to /dev/null, not to the restored stdout
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
