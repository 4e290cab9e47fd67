"""ragkit against the reference llm2vec 0.2.3 itself: the same texts, the same weights, both vectors.

    bash ../shared/peers/setup_llm2vec.sh        # once: llm2vec 0.2.3 + transformers 4.44 + SmolLM2
    python benchmarks/parity_llm2vec.py          # prints min / mean cosine per case
    python benchmarks/parity_llm2vec.py --check  # exit 1 if any case is below 0.9999 (fp32)

The reference runs in its own environment (a subprocess: $PEERS/llm2vec-venv, PEERS defaulting to
~/.cache/ragkit-peers) on SmolLM2-135M in fp32, which both stacks read. Texts come from
../shared/data: SciFact passages and claims, STS-B sentences, and long documents made of three
consecutive SciFact abstracts. The chat-turn cases give the reference model the base-model name it
keys its user-turn wrapping on (`config._name_or_path`); ragkit gets the matching `template`. The
adapter case is the published layout: an MNTP LoRA beside its base model's config, merged, then a
second LoRA (random, non-zero weights) on top.

Each case is scored twice on the ragkit side: in llm2vec's format (what a published checkpoint
loads with) and in ragkit's own (instruction tokenized apart, no word cap), to show what the format
moves. The table goes to benchmarks/results/parity_llm2vec.md.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ragkit import Encoder
from ragkit.encoders.formatting import LLM2VEC_TEMPLATES

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache" / "ragkit-peers"))
REFERENCE_PYTHON = PEERS / "llm2vec-venv" / "bin" / "python"
SMOLLM2 = PEERS / "smollm2-hf"  # transformers 5.x files (ragkit)
SMOLLM2_FOR_LLM2VEC = PEERS / "smollm2-hf-llm2vec"  # the same weights, files transformers 4.44 reads
THRESHOLD = 0.9999
SCIFACT_INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim"


@dataclass
class Case:
    name: str
    texts: list[str]
    instruction: str = ""
    base_name: str = ""  # the name llm2vec keys its chat-turn wrapping on ("" = the local path)
    pooling: str = "mean"
    adapters: bool = False  # base + merged MNTP LoRA + a second LoRA
    cause: str = ""  # what differs in ragkit's own format
    extra: dict = field(default_factory=dict)


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def cases(n: int) -> list[Case]:
    corpus = read_jsonl(DATA / "scifact" / "corpus.jsonl.gz")
    passages = [d["text"] for d in corpus[:n]]
    long_docs = [" ".join(d["text"] for d in corpus[i : i + 3]) for i in range(0, 3 * n, 3)]
    long_docs = [d for d in long_docs if len(d.split()) > 400][: max(4, n // 2)]
    claims = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl")[:n]]
    lines = (DATA / "sts" / "STSBenchmark" / "sts-test.csv").read_text().splitlines()[:n]
    sentences = [line.split("\t")[5] for line in lines]
    turn = "llm2vec wraps texts in the base model's user turn"
    joined = "llm2vec joins the instruction to the text as one string"
    out = [
        Case("passages", passages, cause="llm2vec cuts the longest to fewer words"),
        Case("short sentences", sentences),
        Case("query + instruction", claims, SCIFACT_INSTRUCTION, cause=joined),
        Case("query + instruction ending ':'", claims, SCIFACT_INSTRUCTION + ":", cause=joined),
        Case("documents over 400 words", long_docs, cause="llm2vec cuts them to fewer words"),
        Case("eos_token pooling", sentences, pooling="eos_token", cause="llm2vec appends ' </s>' as text"),
        Case("weighted_mean pooling", claims, SCIFACT_INSTRUCTION, pooling="weighted_mean", cause=joined),
    ]
    for base in ("meta-llama/Meta-Llama-3-8B-Instruct", "mistralai/Mistral-7B-Instruct-v0.2",
                 "google/gemma-2-9b-it", "Qwen/Qwen2-1.5B-Instruct"):  # fmt: skip
        out.append(Case(f"chat turn: {base}", claims, SCIFACT_INSTRUCTION, base_name=base, cause=turn))
    out.append(
        Case("adapters: base + MNTP + second LoRA", claims, SCIFACT_INSTRUCTION, adapters=True, cause=joined)
    )
    return out


# The adapter_config.json keys peft 0.13 (the reference's) knows; newer peft writes more.
PEFT_0_13_KEYS = {
    "peft_type", "task_type", "inference_mode", "r", "lora_alpha", "lora_dropout", "target_modules",
    "bias", "fan_in_fan_out", "init_lora_weights", "modules_to_save", "layers_to_transform",
    "layers_pattern", "rank_pattern", "alpha_pattern", "use_rslora", "use_dora", "revision",
}  # fmt: skip


def write_adapters(root: Path) -> dict[str, Path]:
    """An MNTP LoRA in LLM2Vec's published layout (its base model's config and tokenizer beside it)
    and a second LoRA, each saved twice: naming the files transformers 4.44 reads (for llm2vec) and
    5.x (ragkit)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    paths = {}
    for seed, stage in [(1, "mntp"), (2, "second")]:
        torch.manual_seed(seed)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                          init_lora_weights=False)  # fmt: skip
        model = get_peft_model(AutoModel.from_pretrained(SMOLLM2, dtype=torch.float32), lora)
        for module in model.modules():  # random LoRA weights at the scale training leaves them
            if hasattr(module, "lora_B"):
                for b in module.lora_B.values():
                    torch.nn.init.normal_(b.weight, std=0.02)
        for side, base in [("llm2vec", SMOLLM2_FOR_LLM2VEC), ("ragkit", SMOLLM2)]:
            out = root / f"{stage}-{side}"
            model.save_pretrained(out)
            config = json.loads((out / "adapter_config.json").read_text())
            config = {k: v for k, v in config.items() if k in PEFT_0_13_KEYS}  # as published: older peft
            (out / "adapter_config.json").write_text(
                json.dumps({**config, "base_model_name_or_path": str(base)})
            )
            if stage == "mntp":  # published MNTP repos carry the base's config and tokenizer
                for name in (
                    "config.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                ):
                    if (base / name).is_file():
                        shutil.copy(base / name, out / name)
            paths[f"{stage}-{side}"] = out
    return paths


REFERENCE_SCRIPT = r"""
import json, sys, time, numpy as np, torch
from llm2vec import LLM2Vec
torch.set_num_threads(int(sys.argv[3]))
spec = json.load(open(sys.argv[1]))
models, out, seconds = {}, {}, {}
for case in spec["cases"]:
    key = "adapters" if case["adapters"] else "plain"
    if key not in models:
        if case["adapters"]:
            m = LLM2Vec.from_pretrained(spec["mntp"], peft_model_name_or_path=spec["second"], merge_peft=True,
                                        enable_bidirectional=True, torch_dtype=torch.float32)
        else:
            m = LLM2Vec.from_pretrained(spec["base"], enable_bidirectional=True, torch_dtype=torch.float32)
        models[key] = (m, m.model.config._name_or_path)
    m, name = models[key]
    m.model.config._name_or_path = case["base_name"] or name
    m.pooling_mode = case["pooling"]
    texts = [[case["instruction"], t] for t in case["texts"]] if case["instruction"] else case["texts"]
    start = time.perf_counter()
    out[case["name"]] = m.encode(texts, batch_size=16, show_progress_bar=False, device="cpu").float().numpy()
    seconds[case["name"]] = time.perf_counter() - start
np.savez(sys.argv[2], **out)
json.dump(seconds, open(sys.argv[2] + ".seconds.json", "w"))
"""


def run_reference(spec: dict, workdir: Path, threads: int) -> tuple[dict[str, np.ndarray], dict]:
    (workdir / "spec.json").write_text(json.dumps(spec))
    (workdir / "reference.py").write_text(REFERENCE_SCRIPT)
    out = workdir / "reference.npz"
    done = subprocess.run(
        [
            str(REFERENCE_PYTHON),
            str(workdir / "reference.py"),
            str(workdir / "spec.json"),
            str(out),
            str(threads),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"the reference llm2vec failed:\n{done.stderr[-3000:]}")
    with np.load(out) as vectors:
        return {k: vectors[k] for k in vectors.files}, json.loads(Path(f"{out}.seconds.json").read_text())


@functools.cache
def load_ragkit(
    with_adapters: bool, pooling: str, input_format: str, adapters_root: Path, precision: str
) -> Encoder:
    source = adapters_root / "mntp-ragkit" if with_adapters else SMOLLM2
    return Encoder.load(
        source,
        adapters=[str(adapters_root / "second-ragkit")] if with_adapters else (),
        pooling=pooling,
        input_format=input_format,
        dtype="float32",
        device="cpu",
        precision=precision,  # pinned: ragkit's default is bf16 where the CPU computes it
    )


def ragkit_vectors(case: Case, adapters_root: Path, input_format: str, precision: str = "fp32") -> np.ndarray:
    encoder = load_ragkit(case.adapters, case.pooling, input_format, adapters_root, precision)
    if case.base_name and input_format == "llm2vec":  # the user-turn template llm2vec keys on this name
        config = replace(encoder.config, template=LLM2VEC_TEMPLATES[case.base_name])
        encoder = Encoder(encoder.model, encoder.tokenizer, config)
    return encoder.encode(case.texts, instruction=case.instruction or None, batch_size=16, normalize=False)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=24, help="texts per case")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--check", action="store_true", help=f"exit 1 if any case's min cosine < {THRESHOLD}")
    parser.add_argument("--fp32-only", action="store_true", help="leave out the bf16 column (the CI test)")
    parser.add_argument(
        "--report", type=Path, default=RESULTS / "parity_llm2vec.md", help="where the table goes"
    )
    args = parser.parse_args()
    missing = [p for p in (REFERENCE_PYTHON, SMOLLM2, SMOLLM2_FOR_LLM2VEC) if not p.exists()]
    if missing:
        sys.exit(f"{missing[0]} is missing: build the reference first: bash ../shared/peers/setup_llm2vec.sh")
    torch.set_num_threads(args.threads)
    chosen = cases(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        adapters = write_adapters(workdir / "adapters")
        spec = {
            "base": str(SMOLLM2_FOR_LLM2VEC),
            "mntp": str(adapters["mntp-llm2vec"]),
            "second": str(adapters["second-llm2vec"]),
            "cases": [asdict(c) for c in chosen],
        }
        start = time.perf_counter()
        reference, _ = run_reference(spec, workdir, args.threads)
        reference_seconds = time.perf_counter() - start
        rows = []
        start = time.perf_counter()
        for case in chosen:
            ours = cosine(ragkit_vectors(case, workdir / "adapters", "llm2vec"), reference[case.name])
            own = cosine(ragkit_vectors(case, workdir / "adapters", "ragkit"), reference[case.name])
            rows.append((case, float(ours.min()), float(ours.mean()), float(own.min())))
        ragkit_seconds = time.perf_counter() - start
        bf16 = {  # what the default precision costs, where the hardware computes bf16
            case.name: float(
                cosine(
                    ragkit_vectors(case, workdir / "adapters", "llm2vec", "bf16"), reference[case.name]
                ).min()
            )
            for case in chosen
            if not args.fp32_only
        }

    lines = [
        "# ragkit vs the reference llm2vec 0.2.3",
        "",
        f"`python benchmarks/parity_llm2vec.py --texts {args.texts}`: SmolLM2-135M, the same "
        "weights read by llm2vec 0.2.3 (transformers 4.44.2) and by ragkit (transformers 5.x); "
        "cosine of each text's vector from both. Parity is an fp32 property: both sides compute in "
        "fp32, whatever the machine's default. The *bf16* column is ragkit in its default precision "
        "where the hardware computes bf16 (AVX-512 bf16 or AMX CPUs, bf16 GPUs) against the same fp32 "
        "reference: what the default costs a published checkpoint (emulated, and slow, elsewhere). "
        "*llm2vec format* is how ragkit loads published LLM2Vec checkpoints; *ragkit format* is "
        "ragkit's own (instruction tokenized apart, no word cap).",
        "",
        "| case | texts | min cosine, llm2vec format, fp32 | mean | min cosine, llm2vec format, bf16 "
        "| min cosine, ragkit format, fp32 | what ragkit's format changes |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, low, mean, own in rows:
        low_bf16 = f"{bf16[case.name]:.4f}" if case.name in bf16 else "–"
        lines.append(
            f"| {case.name} | {len(case.texts)} | {low:.7f} | {mean:.7f} | {low_bf16} | {own:.4f} "
            f"| {case.cause or '–'} |"
        )
    lines += ["", f"Time (both sides load their models per case group): reference {reference_seconds:.0f} s, "
              f"ragkit {ragkit_seconds:.0f} s for twice as many encodings."]  # fmt: skip
    report = "\n".join(lines) + "\n"
    print(report)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    failed = [case.name for case, low, _, _ in rows if low < THRESHOLD]
    if args.check and failed:
        sys.exit(f"below {THRESHOLD}: {', '.join(failed)}")


if __name__ == "__main__":
    main()
