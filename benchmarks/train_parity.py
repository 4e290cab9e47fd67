"""ragkit's `paper` preset against llm2vec's own training scripts: the same inputs reach the same losses.

    make reference                             # once: llm2vec 0.2.3, transformers 4.44 and SmolLM2
    python benchmarks/train_parity.py          # prints each pair and its relative difference
    python benchmarks/train_parity.py --check  # exit 1 if an objective is off by more than 1e-5 relative

The reference side runs in the reference environment ($PEERS/llm2vec-venv) and imports the scripts of the
McGill-NLP/llm2vec repository from ../shared/peers/llm2vec-experiments/experiments (never copied here):
run_mntp.py's own `tokenize_function` and `group_texts` (taken from its `main` and mapped over a
`datasets.Dataset` as the script maps them, 1,000 rows a batch) and its collator (the train configs'
"default": transformers' DataCollatorForLanguageModeling, with the "blank" mask token "_"); Wiki1M and
run_simcse.py's collator; E5Data, run_supervised.py's collator (its chat-turn wrapping keyed on the base
model's name) and its trainer's `compute_loss`; the HF Trainer's schedule with run_supervised.py's
StopTrainingCallback. ragkit's side is `training_stage` with the `paper` preset's settings, on the same
SmolLM2-135M weights, in fp32, in eval mode (no dropout: the two sides draw different random numbers).

Cases: the MNTP blocks (equal, id for id) and the loss on the reference collator's masked batch; the
masking rates (ordinary tokens, position 0, special tokens) of both collators over many draws; SimCSE on
sentences of equal length (on mixed lengths the reference's pooling averages left padding too: a
deliberate difference, docs/adapt.md); supervised with an E5 instruction, on a plain base and with a
chat-turn base name; the E5 instruction table; the learning rate at steps 1, 300 and 1000 of the
supervised and SimCSE schedules. The table goes to benchmarks/results/train_parity.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from ragkit.io import read_json_lines

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXPERIMENTS = Path(__file__).resolve().parents[2] / "shared" / "peers" / "llm2vec-experiments" / "experiments"
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache" / "ragkit-peers"))
REFERENCE_PYTHON = PEERS / "llm2vec-venv" / "bin" / "python"
SMOLLM2 = PEERS / "smollm2-hf"  # transformers 5.x files (ragkit)
SMOLLM2_FOR_LLM2VEC = PEERS / "smollm2-hf-llm2vec"  # the same weights, files transformers 4.44 reads
TOLERANCE = 1e-5
CHAT_BASE = "meta-llama/Meta-Llama-3-8B-Instruct"
E5_DATASET = "msmarco_passage"
MNTP_LENGTH = 128
MASK_DRAWS = 100
# The LR cases: (stage, lr, warmup, batch, rows of data); 3 epochs' decay, stopped at step 1000.
SCHEDULES = {"supervised": (2e-4, 300, 2, 2 * 2930), "simcse": (3e-5, 0, 2, 2 * 7813)}
LR_STEPS = (1, 300, 301, 1000)

REFERENCE_SCRIPT = r"""
import ast, json, math, random, sys, tempfile, textwrap
from itertools import chain
from pathlib import Path
import numpy as np, torch, datasets, transformers
sys.path.insert(0, sys.argv[3])
import run_mntp, run_simcse, run_supervised
from llm2vec import LLM2Vec
from llm2vec.dataset.E5Data import E5Data, E5_EMBEDDING_PROMPTS
from llm2vec.dataset.Wiki1M import Wiki1M
from llm2vec.loss.utils import load_loss
from llm2vec.models import LlamaBiForMNTP
from accelerate import PartialState

PartialState()  # the datasets' loggers are accelerate's
torch.manual_seed(0)
spec = json.load(open(sys.argv[1]))
out = {}
tokenizer = transformers.AutoTokenizer.from_pretrained(spec["base"])
tokenizer.mask_token = "_"  # run_mntp.py, mask_token_type "blank", for a tokenizer without a mask token

# run_mntp.py's tokenize_function and group_texts, as its main defines them (the non line-by-line ones).
tree = ast.parse(Path(sys.argv[3], "run_mntp.py").read_text())
main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
found = {}
for node in ast.walk(main):
    if isinstance(node, ast.FunctionDef) and node.name in ("tokenize_function", "group_texts"):
        source = ast.get_source_segment(Path(sys.argv[3], "run_mntp.py").read_text(), node)
        found[node.name] = textwrap.dedent(source)  # the last of each: the grouping branch
scope = {"tokenizer": tokenizer, "text_column_name": "text", "chain": chain,
         "max_seq_length": spec["mntp_length"]}
for name in ("tokenize_function", "group_texts"):
    exec(found[name], scope)
raw = datasets.Dataset.from_dict({"text": spec["mntp_rows"]})
tokenized = raw.map(scope["tokenize_function"], batched=True, remove_columns=["text"])
grouped = tokenized.map(scope["group_texts"], batched=True)
columns = grouped.to_dict()
out["blocks"], out["special"] = columns["input_ids"], columns["special_tokens_mask"]

collator = transformers.DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=0.2)
examples = [{"input_ids": i, "special_tokens_mask": s} for i, s in zip(out["blocks"], out["special"])]
ordinary = position0 = special = 0
counts = {"ordinary": [0, 0], "position 0": [0, 0], "special": [0, 0]}
for draw in range(spec["mask_draws"]):
    torch.manual_seed(draw)
    batch = collator([dict(e) for e in examples])
    selected = batch["labels"] != -100
    marks = torch.tensor(out["special"], dtype=torch.bool)
    first = torch.zeros_like(marks); first[:, 0] = True
    for key, where in (("ordinary", ~marks & ~first), ("position 0", ~marks & first), ("special", marks)):
        counts[key][0] += int(selected[where].sum()); counts[key][1] += int(where.sum())
    if draw == 0:
        out["masked_inputs"] = batch["input_ids"][:4].tolist()
        out["masked_labels"] = batch["labels"][:4].tolist()
out["mask_rates"] = {k: (a / b if b else None) for k, (a, b) in counts.items()}
mntp = LlamaBiForMNTP.from_pretrained(spec["base"], torch_dtype=torch.float32).eval()
with torch.no_grad():
    masked = torch.tensor(out["masked_inputs"])
    out["mntp_loss"] = mntp(input_ids=masked, labels=torch.tensor(out["masked_labels"])).loss.item()
del mntp

model = LLM2Vec.from_pretrained(spec["base"], enable_bidirectional=True, pooling_mode="mean",
                                max_length=spec["max_length"], torch_dtype=torch.float32)
model.eval()
class Holder: pass
holder = Holder(); holder.model = model; holder.loss_function = load_loss("HardNegativeNLLLoss", scale=20.0)
for key in ("simcse", "simcse_mixed"):
    wiki = Path(tempfile.mkdtemp()) / "wiki1m.txt"
    wiki.write_text("\n".join(spec[key]) + "\n")
    wiki1m = Wiki1M(split="train", file_path=str(wiki))
    samples = [wiki1m[i] for i in range(len(wiki1m))]
    features, _ = run_simcse.DefaultCollator(model)(samples)
    with torch.no_grad():
        out[f"{key}_loss"] = run_simcse.SimCSETrainer.compute_loss(holder, model, (features, None)).item()

folder = Path(tempfile.mkdtemp())
for name in E5_EMBEDDING_PROMPTS:
    rows = spec["supervised"] if name == spec["e5_dataset"] else []
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
random.seed(0)
data = E5Data(split="train", file_path=str(folder), effective_batch_size=len(spec["supervised"]))
samples = [data[i] for i in range(len(data))]
holder.loss_function = load_loss("HardNegativeNLLLoss", scale=50.0)
for case, name in (("plain", spec["base"]), ("chat", spec["chat_base"])):
    model.model.config._name_or_path = name
    features, labels = run_supervised.DefaultCollator(model)(samples)
    with torch.no_grad():
        loss = run_supervised.LLM2VecSupervisedTrainer.compute_loss(holder, model, (features, labels))
    out[f"supervised_{case}_loss"] = loss.item()
out["e5_prompts"] = {k: list(v) if isinstance(v, list) else v for k, v in E5_EMBEDDING_PROMPTS.items()}

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
    def forward(self, x):
        return {"loss": (self.w * x.float()).sum() * 0}
class Rates(transformers.TrainerCallback):
    def __init__(self): self.rates = {}
    def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.rates[state.global_step + 1] = lr_scheduler.get_last_lr()[0]
out["lr"] = {}
for stage, (lr, warmup, batch, rows) in spec["schedules"].items():
    args = transformers.TrainingArguments(output_dir=tempfile.mkdtemp(), learning_rate=lr,
        warmup_steps=warmup, num_train_epochs=3, per_device_train_batch_size=batch, save_strategy="no",
        report_to=[], logging_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_drop_last=False)
    rates = Rates()
    trainer = transformers.Trainer(model=Tiny(), args=args, train_dataset=[{"x": 1}] * rows,
        data_collator=lambda f: {"x": torch.ones(len(f))}, callbacks=[rates])
    trainer.add_callback(run_supervised.StopTrainingCallback(1000))
    trainer.train()
    out["lr"][stage] = {str(k): rates.rates[k] for k in spec["lr_steps"]}
    out["lr"][stage]["last"] = max(rates.rates)
json.dump(out, open(sys.argv[2], "w"))
"""


def mntp_rows() -> list[str]:
    """WikiText-2 raw lines as they are (leading spaces, empty lines): what run_mntp.py tokenizes."""
    text = (DATA / "text" / "wikitext-2-raw.wiki.test.raw").read_text(encoding="utf-8")
    return text.splitlines()[:1300]


def equal_length_sentences(tokenizer, n: int = 8) -> list[str]:
    """STS-B sentences that all tokenize to the same length (no padding: the reference pools every
    position of a row, padding included)."""
    lines = (DATA / "sts" / "STSBenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines()
    by_length: dict[int, list[str]] = {}
    for line in lines:
        sentence = line.split("\t")[5].strip()
        by_length.setdefault(len(tokenizer(sentence)["input_ids"]), []).append(sentence)
    length = max(by_length, key=lambda k: len(by_length[k]))
    return list(dict.fromkeys(by_length[length]))[:n]


def mixed_length_sentences(n: int = 8) -> list[str]:
    """STS-B sentences of many lengths: the reference left-pads them and, with no separator in a SimCSE
    text, its mean pools every position of the row, padding included."""
    lines = (DATA / "sts" / "STSBenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines()
    sentences = sorted({line.split("\t")[5].strip() for line in lines[:200]}, key=len)
    return [sentences[i * (len(sentences) - 1) // (n - 1)] for i in range(n)]


def supervised_rows(n: int = 8) -> list[dict]:
    """SciFact claims with a cited abstract and an uncited one: (query, positive, negative)."""
    corpus = [row for _, row in read_json_lines(DATA / "scifact" / "corpus.jsonl.gz")]
    queries = [row for _, row in read_json_lines(DATA / "scifact" / "queries.jsonl")]
    rows = []
    for i in range(n):
        rows.append(
            {
                "query": queries[i]["text"],
                "positive": " ".join(corpus[2 * i]["text"].split()[:60]),
                "negative": " ".join(corpus[2 * i + 1]["text"].split()[:60]),
            }
        )
    return rows


def run_reference(spec: dict, workdir: Path) -> dict:
    (workdir / "spec.json").write_text(json.dumps(spec))
    (workdir / "reference.py").write_text(REFERENCE_SCRIPT)
    done = subprocess.run(
        [str(REFERENCE_PYTHON), str(workdir / "reference.py"), str(workdir / "spec.json"),
         str(workdir / "out.json"), str(EXPERIMENTS)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the reference scripts failed:\n{done.stderr[-4000:]}")
    return json.loads((workdir / "out.json").read_text())


def ragkit_side(spec: dict, workdir: Path) -> dict:
    """The same cases through ragkit's paper-preset stages."""
    from ragkit.adapt import stage_configs
    from ragkit.adapt.distributed import World
    from ragkit.adapt.losses.mntp import IGNORE, MNTPLoss, mask_token_id, mask_tokens
    from ragkit.adapt.registry import training_stage
    from ragkit.adapt.stages import DatasetSampler, Sampler, reference_blocks
    from ragkit.adapt.trainer import decay_steps, linear_schedule
    from ragkit.adapt.tuning import finish
    from ragkit.encoders.loading import load_model, load_tokenizer
    from ragkit.encoders.supervised import E5_INSTRUCTIONS

    out: dict = {}
    tokenizer = load_tokenizer(str(SMOLLM2))
    blocks, special, _ = reference_blocks(spec["mntp_rows"], tokenizer, spec["mntp_length"], 10**6, True)
    out["blocks"], out["special"] = blocks.tolist(), special.int().tolist()
    counts = {"ordinary": [0, 0], "position 0": [0, 0], "special": [0, 0]}
    first = torch.zeros_like(special)
    first[:, 0] = True
    for draw in range(spec["mask_draws"]):
        _, labels = mask_tokens(
            blocks,
            ~special,
            mask_id=mask_token_id(tokenizer),
            vocab_size=len(tokenizer),
            ratio=0.2,
            generator=torch.Generator().manual_seed(draw),
            at_least_one=False,  # the paper preset's MNTP stage (inputs "llm2vec")
        )
        selected = labels != IGNORE
        for key, where in (
            ("ordinary", ~special & ~first),
            ("position 0", ~special & first),
            ("special", special),
        ):
            counts[key][0] += int(selected[where].sum())
            counts[key][1] += int(where.sum())
    out["mask_rates"] = {k: (a / b if b else None) for k, (a, b) in counts.items()}

    paper = stage_configs(["mntp", "simcse", "supervised"], "paper")
    lm, _ = load_model(str(SMOLLM2), with_lm_head=True, dtype=torch.float32)
    mntp = paper["mntp"]
    mntp.data, mntp.max_length, mntp.batch_size = str(workdir / "mntp.txt"), spec["mntp_length"], 4
    (workdir / "mntp.txt").write_text("\n".join(spec["mntp_rows"]))
    with training_stage("mntp", lm, tokenizer, mntp, World()) as (stage, model):
        model.eval()
        inputs, labels = torch.tensor(spec["masked_inputs"]), torch.tensor(spec["masked_labels"])
        with torch.no_grad():
            hidden = stage.encoder.hidden_states(inputs, torch.ones_like(inputs))
            out["mntp_loss"] = MNTPLoss(stage.lm_head)(hidden, labels).item()
        finish(model)  # LoRA B is zero: the weights stay SmolLM2's
    decoder = lm.get_decoder()

    for key in ("simcse", "simcse_mixed"):
        simcse = paper["simcse"]
        (workdir / f"{key}.txt").write_text("\n".join(spec[key]) + "\n")
        simcse.data, simcse.batch_size, simcse.max_length = str(workdir / f"{key}.txt"), len(spec[key]), 128
        with training_stage("simcse", decoder, tokenizer, simcse, World()) as (stage, model):
            model.eval()
            out[f"{key}_loss"] = stage.step(0)[0]
            finish(model)

    folder = workdir / "e5"
    folder.mkdir()
    rows = spec["supervised"]
    (folder / f"{spec['e5_dataset']}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    supervised = paper["supervised"]
    supervised.data, supervised.batch_size, supervised.max_length = str(folder), len(rows), spec["max_length"]
    supervised.micro_batch_size = None
    for case, name in (("plain", str(SMOLLM2)), ("chat", spec["chat_base"])):
        decoder.config._name_or_path = name
        with training_stage("supervised", decoder, tokenizer, supervised, World()) as (stage, model):
            model.eval()
            out[f"supervised_{case}_loss"] = stage.step(0)[0]
            finish(model)
    out["e5_prompts"] = {k: list(v) if isinstance(v, tuple) else v for k, v in E5_INSTRUCTIONS.items()}

    out["lr"] = {}
    for stage_name, (lr, warmup, batch, n) in spec["schedules"].items():
        config = paper[stage_name]
        config.lr, config.warmup_steps, config.batch_size = lr, warmup, batch
        sampler = (
            DatasetSampler([spec["e5_dataset"]] * n, config, World(), stage_name)
            if stage_name == "supervised"
            else Sampler(n, config, World(), stage_name, distinct=True)
        )

        stage = SimpleNamespace(epoch_steps=sampler.steps_per_epoch)  # all the schedule reads of a stage
        factor = linear_schedule(warmup, decay_steps(stage, config))
        out["lr"][stage_name] = {str(k): lr * factor(k - 1) for k in spec["lr_steps"]}
        out["lr"][stage_name]["last"] = config.steps
    return out


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help=f"exit 1 past {TOLERANCE:g} relative")
    parser.add_argument("--report", type=Path, default=RESULTS / "train_parity.md")
    args = parser.parse_args()
    missing = [p for p in (REFERENCE_PYTHON, SMOLLM2, SMOLLM2_FOR_LLM2VEC, EXPERIMENTS) if not p.exists()]
    if missing:
        sys.exit(f"{missing[0]} is missing: build the reference first: bash ../shared/peers/setup_llm2vec.sh")
    torch.manual_seed(0)
    from ragkit.encoders.loading import load_tokenizer

    tokenizer = load_tokenizer(str(SMOLLM2))
    spec = {
        "base": str(SMOLLM2_FOR_LLM2VEC),
        "chat_base": CHAT_BASE,
        "mntp_rows": mntp_rows(),
        "mntp_length": MNTP_LENGTH,
        "mask_draws": MASK_DRAWS,
        "simcse": equal_length_sentences(tokenizer),
        "simcse_mixed": mixed_length_sentences(),
        "supervised": supervised_rows(),
        "e5_dataset": E5_DATASET,
        "max_length": 512,
        "schedules": SCHEDULES,
        "lr_steps": list(LR_STEPS),
    }
    with tempfile.TemporaryDirectory() as tmp:
        reference = run_reference(spec, Path(tmp))
        spec["masked_inputs"], spec["masked_labels"] = reference["masked_inputs"], reference["masked_labels"]
        ours = ragkit_side(spec, Path(tmp))

    rows: list[tuple[str, str, str, float, bool]] = []  # case, reference, ragkit, relative difference, ok

    def objective(case: str, a: float, b: float) -> None:
        diff = relative(b, a)
        rows.append((case, f"{a:.8f}", f"{b:.8f}", diff, diff <= TOLERANCE))

    same_blocks = reference["blocks"] == ours["blocks"] and reference["special"] == ours["special"]
    n_blocks = len(reference["blocks"])
    verdict = "equal" if same_blocks else "differ"
    rows.append(("MNTP blocks (ids, special-tokens mask)", f"{n_blocks} blocks", verdict,
                 0.0 if same_blocks else 1.0, same_blocks))  # fmt: skip
    objective("MNTP loss, the reference collator's masks", reference["mntp_loss"], ours["mntp_loss"])
    for key in ("ordinary", "position 0", "special"):
        a, b = reference["mask_rates"][key], ours["mask_rates"][key]
        ok = (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 0.01)
        rows.append((f"masking rate, {key} tokens", f"{a:.4f}" if a is not None else "-",
                     f"{b:.4f}" if b is not None else "-", abs((a or 0) - (b or 0)), ok))  # fmt: skip
    objective("SimCSE loss, equal lengths", reference["simcse_loss"], ours["simcse_loss"])
    a, b = reference["simcse_mixed_loss"], ours["simcse_mixed_loss"]  # not an objective: see the docstring
    rows.append(("SimCSE loss, mixed lengths (by design: ragkit pools real tokens only)", f"{a:.8f}",
                 f"{b:.8f}", relative(b, a), True))  # fmt: skip
    objective(
        "supervised loss, E5 instruction", reference["supervised_plain_loss"], ours["supervised_plain_loss"]
    )
    objective(
        f"supervised loss, chat turn ({CHAT_BASE})",
        reference["supervised_chat_loss"],
        ours["supervised_chat_loss"],
    )
    same_prompts = reference["e5_prompts"] == ours["e5_prompts"]
    verdict = "equal" if same_prompts else "differ"
    rows.append(("E5 instructions", f"{len(reference['e5_prompts'])} datasets", verdict,
                 0.0 if same_prompts else 1.0, same_prompts))  # fmt: skip
    for stage_name in SCHEDULES:
        for step in LR_STEPS:
            objective(f"{stage_name} lr at step {step}", reference["lr"][stage_name][str(step)],
                      ours["lr"][stage_name][str(step)])  # fmt: skip
        last = reference["lr"][stage_name]["last"]
        rows.append((f"{stage_name}: last step", str(last), str(ours["lr"][stage_name]["last"]), 0.0,
                     last == ours["lr"][stage_name]["last"]))  # fmt: skip

    lines = [
        "# The paper preset against llm2vec's training scripts",
        "",
        "`python benchmarks/train_parity.py`: SmolLM2-135M, fp32, eval mode; reference = llm2vec 0.2.3's",
        "experiments/run_*.py (transformers 4.44), ragkit = `training_stage` with `--preset paper`.",
        "",
        "| case | reference | ragkit | relative difference | ok |",
        "|---|---:|---:|---:|:---:|",
    ]
    lines += [f"| {c} | {a} | {b} | {d:.2e} | {'yes' if ok else 'NO'} |" for c, a, b, d, ok in rows]
    text = "\n".join(lines) + "\n"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    if args.check and not all(ok for *_, ok in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
