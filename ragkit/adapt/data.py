"""Training text and pairs from files, folders, Hugging Face datasets or built-in sources.

- text file (.txt, .raw): one passage (or sentence) per line;
- JSON lines (.jsonl, .json, gzipped or not): a "text" field, or a "paragraphs" list;
- folder: a corpus as `ragkit index` reads it (each document a passage), or, for supervised
  training, a folder of .jsonl pair files named by dataset (the LLM2Vec / E5 layout);
- Hub dataset "org/name[:config]", and the paper's defaults by name: "wikitext-103", "wiki1m";
- "pydoc": the Python reference topics that ship with CPython, for offline smoke runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ragkit.corpus import Fields, ReadStats, list_files, read_documents
from ragkit.encoders.supervised import DEFAULT_INSTRUCTION, Example, e5_instruction
from ragkit.errors import RagkitError, first_line
from ragkit.io import TEXT_SUFFIXES, inner_suffix, is_hub_id, open_text, read_json_lines
from ragkit.retrieval.sentences import split_sentences

HUB_TEXTS: dict[str, tuple[str, str | None, dict]] = {
    "wikitext-103": ("Salesforce/wikitext", "wikitext-103-raw-v1", {}),
    "wiki1m": (
        "text",
        None,
        {"data_files": "hf://datasets/princeton-nlp/datasets-for-simcse/wiki1m_for_simcse.txt"},
    ),
}
JSON_SUFFIXES = {".jsonl", ".json"}


def read_texts(source: str, raw: bool = False) -> Iterator[str]:
    """Non-empty passages, stripped, in a fixed order (resuming a run depends on it).

    `raw`: every row as the reference's training scripts read it (HF datasets' "text" loader): a
    text file's lines without their line breaks and a dataset's "text" rows unchanged, empty ones
    included (a tokenizer that adds BOS gives an empty row one token). Folders, JSON lines and
    "pydoc" read the same either way.
    """
    if source == "pydoc":
        yield from _pydoc_paragraphs()
        return
    path = Path(source).expanduser()
    if path.is_dir():
        yield from _folder_texts(path)
    elif path.is_file():
        yield from _file_texts(path, raw)
    elif source in HUB_TEXTS or is_hub_id(source, config=True):
        yield from _hub_texts(source, raw)
    else:
        raise RagkitError(
            f"training data {source!r} not found: give a file, a folder, a Hub dataset id or "
            f"one of {', '.join(['pydoc', *HUB_TEXTS])}"
        )


def training_sentences(text: str, min_words: int = 3) -> list[str]:
    """Sentences of a passage (SimCSE trains on sentences): its lines joined, for a line break inside a
    paragraph is not a sentence's end; fragments under `min_words` are dropped."""
    return [s for s in split_sentences(" ".join(text.split())) if len(s.split()) >= min_words]


def read_examples(source: str, instruction: str | None = None, negatives: int = 1) -> list[Example]:
    """(query, positive, negatives) examples for supervised training.

    Rows may be {"query", "positive", "negative"} (E5 / LLM2Vec; "negative" a string or a list),
    {"anchor", "positive", "negative"} (sentence-transformers triplets) or SNLI rows
    {"sentence1", "sentence2", "gold_label"}, which become (premise, entailed, contradicted).
    The instruction is the row's own, else the file's E5 dataset's (two in turn, for the datasets
    that have two), else `instruction`. Each example records its file's name as its dataset.
    """
    if source == "pydoc":
        return _pydoc_examples(
            instruction or "Given a section title of the Python reference, retrieve its text"
        )
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if inner_suffix(p) in JSON_SUFFIXES)
        if not files:
            raise RagkitError(f"{path} holds no .jsonl files of (query, positive, negative) rows")
        examples = [e for f in files for e in _file_examples(f, instruction, negatives)]
    elif path.is_file():
        examples = _file_examples(path, instruction, negatives)
    elif is_hub_id(source, config=True):
        rows = ((i + 1, row) for i, row in enumerate(_hub_dataset(source)))
        examples = _examples(rows, source, source, instruction, negatives)
    else:
        raise RagkitError(
            f"training pairs {source!r} not found: give a .jsonl file, a folder of them or a Hub id"
        )
    if not examples:
        raise RagkitError(f"{source}: no (query, positive) examples found")
    return examples


def _file_examples(path: Path, instruction: str | None, negatives: int) -> list[Example]:
    if inner_suffix(path) not in JSON_SUFFIXES:
        raise RagkitError(
            f"{path}: supervised data must be JSON lines (.jsonl) of query/positive/negative rows"
        )
    return _examples(_json_rows(path), str(path), path.name.split(".")[0], instruction, negatives)


def _examples(rows, where: str, dataset: str, instruction: str | None, negatives: int) -> list[Example]:
    def instruction_of(row: int, own: str | None = None) -> str:
        return own or e5_instruction(dataset, row) or instruction or DEFAULT_INSTRUCTION

    examples: list[Example] = []
    snli: dict[str, dict[str, str]] = {}
    for line, row in rows:
        if {"sentence1", "sentence2", "gold_label"} <= row.keys():
            snli.setdefault(row["sentence1"], {}).setdefault(row["gold_label"], row["sentence2"])
            continue
        query = row.get("query", row.get("anchor"))
        positive = row.get("positive")
        if not isinstance(query, str) or not isinstance(positive, str):
            raise RagkitError(f"{where}:{line}: expected string fields 'query' (or 'anchor') and 'positive'")
        negative = row.get("negative") or []
        negative = [negative] if isinstance(negative, str) else list(negative)
        own = row.get("instruction")
        examples.append(
            Example(query, positive, negative[:negatives], instruction_of(len(examples), own), dataset)
        )
    if snli:
        for i, (premise, by_label) in enumerate(snli.items()):
            if "entailment" in by_label:
                hard = [by_label["contradiction"]] if "contradiction" in by_label else []
                nli = e5_instruction("allnli", i) or DEFAULT_INSTRUCTION
                examples.append(Example(premise, by_label["entailment"], hard[:negatives], nli, "allnli"))
    return examples


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """JSON lines, or a .json file holding one array of objects."""
    if inner_suffix(path) == ".json":
        with open_text(path) as f:
            if f.read(1) == "[":
                f.seek(0)
                try:
                    rows = json.load(f)
                except json.JSONDecodeError as e:
                    raise RagkitError(f"{path}: invalid JSON ({e.msg})") from None
                yield from ((i, row) for i, row in enumerate(rows, start=1) if isinstance(row, dict))
                return
    yield from read_json_lines(path)


def _file_texts(path: Path, raw: bool = False) -> Iterator[str]:
    suffix = inner_suffix(path)
    if suffix in JSON_SUFFIXES:
        for i, row in _json_rows(path):
            if isinstance(row.get("paragraphs"), list):
                yield from (p for p in row["paragraphs"] if isinstance(p, str) and p.strip())
            elif isinstance(row.get("text"), str):
                if row["text"].strip():
                    yield row["text"]
            else:
                raise RagkitError(f"{path}:{i}: expected a 'text' string or a 'paragraphs' list")
    elif suffix in TEXT_SUFFIXES or suffix == "":
        with open_text(path, errors="replace") as f:
            if raw:
                yield from (line.rstrip("\r\n") for line in f)
            else:
                yield from (line.strip() for line in f if line.strip())
    else:
        raise RagkitError(f"{path}: unsupported training file; use .txt (a passage per line) or .jsonl")


def _folder_texts(root: Path) -> Iterator[str]:
    stats = ReadStats()
    for file in list_files(root):
        for doc in read_documents(file, Fields(), stats):
            yield doc.embedding_text()


def _hub_dataset(source: str):
    """Rows of the train split of a Hub dataset "org/name[:config]" (or a built-in alias)."""
    import datasets

    name, config, kwargs = HUB_TEXTS.get(source) or (*_split_config(source), {})
    try:
        return datasets.load_dataset(name, config, split="train", **kwargs)
    except Exception as e:  # datasets raises many types for "not reachable" / "not found"
        raise RagkitError(
            f"could not load dataset {source!r} ({first_line(e)}); offline, pass a local file or folder "
            "(or `preset` cpu-smoke, which trains on built-in text)"
        ) from e


def _hub_texts(source: str, raw: bool = False) -> Iterator[str]:
    dataset = _hub_dataset(source)
    if "text" not in dataset.column_names:
        raise RagkitError(
            f"dataset {source!r} has no 'text' column (columns: {', '.join(dataset.column_names)})"
        )
    for batch in dataset.iter(batch_size=1000):
        if raw:
            yield from (t or "" for t in batch["text"])
        else:
            yield from (t.strip() for t in batch["text"] if t and t.strip())


def _pydoc_paragraphs() -> Iterator[str]:
    for _, body in _pydoc_sections():
        yield from (" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if len(p.split()) >= 8)


def _pydoc_examples(instruction: str) -> list[Example]:
    examples = []
    for title, body in _pydoc_sections():
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if len(p.split()) >= 8]
        if paragraphs:
            examples.append(Example(title, paragraphs[0], [], instruction))
    return examples


def _pydoc_sections() -> Iterator[tuple[str, str]]:
    """(heading, text) for every underlined heading in the CPython reference topics."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        parts = re.split(r"\n([^\n]+)\n[*=\-]{3,}\n", "\n" + topics[key])
        for title, body in zip(parts[1::2], parts[2::2], strict=True):
            yield title.strip(), body


def _split_config(source: str) -> tuple[str, str | None]:
    name, _, config = source.partition(":")
    return name, config or None
