"""Written queries cached per passage, so that no passage is sent to the generator twice.

One JSON lines file per generator and prompt settings under RAGKIT_HOME, appended batch by batch: an
interrupted run, or another run over some of the same passages (an index rebuilt, a training rerun),
reuses every query already written.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.paths import ragkit_home
from ragkit.querygen.prompt import QUERY_PROMPT

if TYPE_CHECKING:
    from ragkit.querygen.generate import GenerationSettings


def passage_key(passage: str) -> str:
    """A stable key for a passage: which passages already have queries when a run resumes."""
    return hashlib.sha1(passage.encode("utf-8")).hexdigest()


def cache_path(settings: GenerationSettings) -> Path:
    """One file per generator and prompt settings, under RAGKIT_HOME."""
    key = json.dumps([settings.generator, settings.passage_words, settings.max_new_tokens, settings.dtype])
    key += QUERY_PROMPT
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(settings.generator).name)
    return ragkit_home() / "synthetic" / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.jsonl"


def read_cache(path: Path) -> tuple[dict[str, str], int]:
    """(passage key -> query, lines skipped). A line a crash cut short, even in the middle of a UTF-8
    character, is skipped and counted, as the corpus reader skips a bad file: its passage is written again."""
    done: dict[str, str] = {}
    skipped = 0
    if path.is_file():
        for raw in path.read_bytes().splitlines():
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                done[row["key"]] = row["query"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                skipped += 1
    return done, skipped
