"""One query per passage, written by an instruction-tuned causal LM (InPars' few-shot prompt,
Bonifacio et al. 2022).

The synthetic training stage (ragkit/adapt/synthetic.py) trains on such queries, and an index
calibrates its default search on them (ragkit/index/calibration.py). Decoding is the slow part, so
every query is cached (cache.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from ragkit.progress import progress_bar
from ragkit.querygen.cache import cache_path, passage_key, read_cache
from ragkit.querygen.prompt import clean_query, query_prompt_for


@dataclass(frozen=True)
class GenerationSettings:
    """How queries are written; every field is part of the cache key."""

    generator: str = "smollm2-135m"  # an instruction-tuned causal LM: built-in name, Hub id, dir, .gguf
    passage_words: int = 120  # of each passage, shown to the generator
    max_new_tokens: int = 32
    batch_size: int = 32
    dtype: str = "bf16"

    @classmethod
    def native(cls, device: torch.device | str = "cpu", **fields) -> GenerationSettings:
        """These settings in bf16 where `device` computes it in hardware, else in fp32 (emulated bf16 is
        slower than fp32): the generator's fastest precision, named so that the cache key says which."""
        from ragkit.encoders.precision import native_bf16

        return cls(**fields, dtype="bf16" if native_bf16(torch.device(device)) else "float32")


def generate_queries(
    passages: Sequence[str],
    settings: GenerationSettings,
    *,
    device: torch.device | str = "cpu",
    cache: Path | None = None,
    show_progress: bool = True,
) -> list[str]:
    """One query per passage (greedy, one line), cached per passage in `cache` (JSON lines)."""
    from ragkit.device import resolve_dtype
    from ragkit.encoders.loading import load_tokenizer, quiet_transformers, resolve

    cache = cache or cache_path(settings)
    done, skipped = read_cache(cache)
    if skipped and show_progress:
        Console(stderr=True).print(
            f"{cache}: {skipped} damaged line(s) skipped; their passages get new queries", highlight=False
        )
    keys = [passage_key(p) for p in passages]
    todo = [i for i, key in enumerate(keys) if key not in done]
    if todo:
        from transformers import AutoModelForCausalLM

        source = resolve(settings.generator)
        tokenizer = load_tokenizer(source)
        tokenizer.padding_side = "left"  # generation continues every row from its last token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = resolve_dtype(settings.dtype, torch.device(device))
        with quiet_transformers():
            # use_kernels=False: no Hub kernels swapped in (see ragkit.encoders.loading.load_model)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_kernels=False)
            model = model.to(device).eval()  # type: ignore[arg-type]  # transformers' decorated to() hides its self
        stop = line_end_ids(tokenizer)
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.is_file() and not cache.read_bytes().endswith(b"\n"):
            with cache.open("a", encoding="utf-8") as out:
                out.write("\n")  # a line torn by a crash stays apart from the next one
        bar = progress_bar("writing queries", enabled=show_progress)
        with bar, cache.open("a", encoding="utf-8") as out, torch.inference_mode():
            task = bar.add_task("writing queries", total=len(passages), completed=len(passages) - len(todo))
            for first in range(0, len(todo), settings.batch_size):
                rows = todo[first : first + settings.batch_size]
                prompts = [query_prompt_for(passages[i], settings.passage_words) for i in rows]
                batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
                generated = model.generate(
                    **batch,
                    max_new_tokens=settings.max_new_tokens,
                    do_sample=False,
                    no_repeat_ngram_size=3,
                    eos_token_id=[*stop, tokenizer.eos_token_id],
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = generated[:, batch["input_ids"].shape[1] :]
                for i, ids in zip(rows, new, strict=True):
                    query = clean_query(tokenizer.decode(ids, skip_special_tokens=True))
                    done[keys[i]] = query
                    out.write(json.dumps({"key": keys[i], "query": query}) + "\n")
                out.flush()  # a killed run keeps every finished batch
                bar.advance(task, len(rows))
    return [done[key] for key in keys]


def line_end_ids(tokenizer) -> list[int]:
    """Tokens that hold a line break: a query is one line, so generation stops at any of them."""
    return [
        i for token, i in tokenizer.get_vocab().items() if "\n" in tokenizer.convert_tokens_to_string([token])
    ]
