"""An encoder as a sentence-transformers model directory (`ragkit export`, `Encoder.export`).

The layout is sentence-transformers' own: modules.json with a Transformer, a Pooling and a
Normalize module, the instructions as its named prompts ("query", "document"), the weights with
`is_causal: false` in config.json. The Transformer is `RagkitTransformer` (ragkit/encoders/st_module.py,
copied in with ragkit's formatting code), so tokens and pooled positions are ragkit's exactly and
loading takes `trust_remote_code=True`, as for other instruction-tuned LLM embedders.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.errors import RagkitError
from ragkit.io import atomic_path, write_error

if TYPE_CHECKING:
    from ragkit.encoders.encoder import Encoder

EXPORT_FORMATS = ("sentence-transformers",)
MODULE_FILE, FORMATTING_FILE = "ragkit_transformer.py", "ragkit_formatting.py"
EXPORT_RECORD = ".ragkit-export.json"  # the files an export wrote: what the next `overwrite` replaces
STAGE_PREFIX = ".ragkit-export.tmp-"  # an export is written here inside an existing folder, then moved
# ragkit pooling -> sentence-transformers Pooling mode, over the text's own tokens.
ST_POOLING = {"mean": "mean", "last_token": "lasttoken", "eos_token": "lasttoken"}


def export_sentence_transformers(
    encoder: Encoder, directory: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write `encoder` as a sentence-transformers directory.

    A new `directory` appears whole or not at all. An existing one must be empty, or `overwrite`
    given: then the files an export writes are replaced (and those a previous export wrote and this
    one does not, listed in its `.ragkit-export.json`, removed); every other file stays. The export is
    written beside them first, so a failure (a full disk) leaves the directory as it was.
    """
    c = encoder.config
    if c.pooling not in ST_POOLING:
        raise RagkitError(
            f"`pooling` {c.pooling!r} has no exact sentence-transformers equivalent; "
            f"export supports {', '.join(ST_POOLING)}"
        )
    directory = Path(directory)
    check_target(directory, overwrite)
    kept = "nothing was changed there"
    try:
        if not directory.exists():
            with atomic_path(directory) as tmp:
                _write(encoder, tmp)
        else:
            stage = directory / f"{STAGE_PREFIX}{os.getpid()}"
            shutil.rmtree(stage, ignore_errors=True)
            try:
                _write(encoder, stage)
                kept = "some files of the export may have been replaced; run it again"
                _move_into(stage, directory)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    except RagkitError:
        raise
    except Exception as e:  # OSError, or safetensors' own error, on a full or read-only disk
        if (error := write_error(e, directory, kept)) is None:
            raise
        raise error from e
    return directory


def check_target(directory: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, or (unless `overwrite`) a folder that holds anything."""
    if directory.exists() and not directory.is_dir():
        raise RagkitError(f"{directory} is a file; export to a folder (a new or empty one)")
    if not directory.is_dir() or overwrite:
        return
    held = [p.name for p in directory.iterdir() if not p.name.startswith(STAGE_PREFIX)]
    if held:
        raise RagkitError(
            f"{directory} is not empty ({len(held)} {'entry' if len(held) == 1 else 'entries'}, e.g. "
            f"{sorted(held)[0]!r}); export to a new "
            "or empty folder, or pass `overwrite` to replace the files an export writes (others are kept)"
        )


def _move_into(stage: Path, directory: Path) -> None:
    """The staged export's files into `directory`, file by file, replacing only those; the previous
    export's files that this one does not write go."""
    written = _recorded(stage)
    previous = _recorded(directory)
    for name in [*written, EXPORT_RECORD]:  # the record last: it lists a complete export
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / name, directory / name)
    for name in set(previous) - set(written):
        stale = directory / name
        if ".." not in Path(name).parts and stale.is_file():
            stale.unlink()


def _recorded(directory: Path) -> list[str]:
    """The files the export in `directory` wrote, from its record ([] without one)."""
    try:
        return list(json.loads((directory / EXPORT_RECORD).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write(encoder: Encoder, tmp: Path) -> None:
    """Every file of the export into the new folder `tmp`."""
    c = encoder.config
    tmp.mkdir()
    encoder.write_weights(tmp)  # config.json keeps is_causal false: bidirectional when loaded
    ragkit_format = {
        "template": c.template,
        "instruction_join": c.instruction_join,
        "doc_max_length": c.doc_max_length,
        "append_eos": c.pooling == "eos_token" and c.instruction_join == "separate",
        "max_length": c.max_length,
    }
    _write_json(
        tmp / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": f"{Path(MODULE_FILE).stem}.RagkitTransformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",  # 5.x and 6.x both read the legacy names
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        tmp / "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "ragkit_format": ragkit_format,
        },
    )
    prompts = {"query": c.query_instruction, "document": c.document_instruction}
    _write_json(
        tmp / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": {name: text for name, text in prompts.items() if text},
            "default_prompt_name": "document" if c.document_instruction else None,
            "similarity_fn_name": "cosine",
        },
    )
    (tmp / "1_Pooling").mkdir()
    # The Transformer module's mask already leaves the prompt out, so Pooling includes "all" of it.
    _write_json(
        tmp / "1_Pooling" / "config.json",
        {
            "embedding_dimension": encoder.dim,
            "pooling_mode": ST_POOLING[c.pooling],
            "include_prompt": True,
        },
    )
    (tmp / "2_Normalize").mkdir()
    here = Path(__file__).parent
    shutil.copyfile(here / "st_module.py", tmp / MODULE_FILE)
    formatting = (here / "formatting.py").read_text()
    standalone = formatting.replace("from ragkit.errors import RagkitError", "RagkitError = ValueError")
    if standalone == formatting:  # formatting.py changed how it imports its error: update this
        raise RagkitError("cannot make formatting.py standalone; ragkit's export needs an update")
    (tmp / FORMATTING_FILE).write_text(standalone)
    (tmp / "README.md").write_text(_model_card(encoder))
    written = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    _write_json(tmp / EXPORT_RECORD, {"files": written})


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _model_card(encoder: Encoder) -> str:
    c = encoder.config
    query = f'model.encode_query(["how do plants make energy?"])  # prompt "query": {c.query_instruction!r}'
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [sentence-transformers, llm2vec, ragkit]
---
# {Path(c.source).name or "ragkit encoder"} (exported by ragkit)

An LLM2Vec-style encoder: `{c.source}` ({encoder.model.config.model_type}) with bidirectional
attention, {c.pooling} pooling over the text's own tokens (instructions are attended to, not pooled),
L2-normalised vectors of {encoder.dim} dimensions, texts cut at {c.max_length} tokens.

## sentence-transformers (5.7 or 6.x, with transformers >= 5.2)

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("path/to/this/dir", trust_remote_code=True)
documents = model.encode_document(["Photosynthesis turns light into chemical energy."])
queries = {query if c.query_instruction else 'model.encode_query(["how do plants make energy?"])'}
```

`trust_remote_code=True` loads `{MODULE_FILE}` from this directory: it tokenizes an instruction and
its text apart and pools only the text's tokens, as ragkit does, where sentence-transformers would
join them as one string (other tokens where an instruction ends in a space). The vectors equal
ragkit's (cosine >= 0.9999, tested). `config.json` sets `is_causal: false` for bidirectional attention.

## ragkit

```python
from ragkit import Encoder
encoder = Encoder.load("path/to/this/dir")
```

## Serving

- `ragkit serve --model path/to/this/dir`: OpenAI-compatible `/v1/embeddings` with dynamic batching
  (`"input_type": "query"` adds the query instruction).
- An engine that loads models through sentence-transformers can serve it if it allows remote code.
  Engines that read only the weights and `1_Pooling` (text-embeddings-inference, vLLM's pooling
  runner) would run the model causally and tokenize instructions differently: other vectors.
- Weights are saved with transformers 5.x; transformers 4.x misreads the config.
"""
