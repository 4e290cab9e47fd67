"""Turn `ragkit adapt` outputs into a built-in encoder: their LoRA adapters, in fp16, named after the base.

    python benchmarks/package_encoder.py runs/smollm2-mntp runs/smollm2-mntp-supervised \
        --base smollm2-135m --out ragkit/models/llm2vec-smollm2-135m

Each run's `training/adapters/*` (or an adapter folder given as is: a packaged one, or a snapshot
`<stage folder>/snapshots/step-N` that `snapshot_every` kept) are copied in order as
`adapters/<n>-<stage>/`, with `base_model_name_or_path` set to the built-in base name (not this
machine's cache path) and the weights halved to fp16 (the size of the checkout and the wheel; the
merged vectors agree to within rounding, which the script prints). `ragkit_config.json` gets mean
pooling, bidirectional attention and the generic query instruction. An existing model card
(README.md) is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ragkit import Encoder
from ragkit.encoders.encoder import CONFIG_NAME, EncoderConfig
from ragkit.encoders.supervised import query_prompt
from ragkit.eval.tasks import GENERIC_QUERY_INSTRUCTION


def adapter_dirs(run: Path) -> list[Path]:
    """A LoRA adapter folder itself, or every adapter a `ragkit adapt` output trained, in order."""
    if (run / "adapter_config.json").is_file():
        return [run]
    return [a for a in sorted((run / "training" / "adapters").iterdir()) if a.is_dir()]


def stage_of(adapter: Path) -> str:
    """The stage an adapter folder holds: "supervised" for `2-supervised`, "distill" for a snapshot
    `1-distill/snapshots/step-000200` (or, in a saved run, `snapshots/1-distill/step-000200`)."""
    if adapter.name.startswith("step-"):
        stage = adapter.parent if adapter.parent.name != "snapshots" else adapter.parent.parent
        return stage.name.split("-", 1)[1]
    return adapter.name.split("-", 1)[1]


def package(runs: list[Path], base: str, out: Path) -> list[Path]:
    sources = [a for run in runs for a in adapter_dirs(run)]
    if any(out in source.parents for source in sources):
        raise SystemExit(f"copy the adapters out of {out} first: it is rewritten")
    shutil.rmtree(out / "adapters", ignore_errors=True)
    written = []
    for i, source in enumerate(sources, start=1):
        target = out / "adapters" / f"{i}-{stage_of(source)}"
        target.mkdir(parents=True)
        config = json.loads((source / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = base
        if isinstance(config.get("target_modules"), list):  # peft saves a set: sorted, a release diffs small
            config["target_modules"] = sorted(config["target_modules"])
        (target / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
        weights = load_file(source / "adapter_model.safetensors")
        save_file(
            {k: v.to(torch.float16).contiguous() for k, v in weights.items()},
            target / "adapter_model.safetensors",
        )
        written.append(target)
    EncoderConfig(query_instruction=query_prompt(GENERIC_QUERY_INSTRUCTION)).write(out)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, help="ragkit adapt outputs or adapter folders, in training order"
    )
    parser.add_argument("--base", required=True, help="the built-in model they were trained on")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    written = package(args.runs, args.base, args.out)
    for path in written:
        size = (path / "adapter_model.safetensors").stat().st_size / 2**20
        print(f"{path}: {size:.1f} MB")

    # The packaged adapters (fp16, merged on the base) against the unpacked ones: the last run's merged
    # weights where it is a saved encoder, else every source adapter as it was.
    texts = ["The Nile is the longest river in Africa.", "Why does bread rise?", "Mars is a planet."]
    ours = Encoder.load(args.base, adapters=[str(p) for p in written]).encode(texts)
    if (args.runs[-1] / CONFIG_NAME).is_file():
        reference = Encoder.load(args.runs[-1]).encode(texts)
    else:
        sources = [str(a) for run in args.runs for a in adapter_dirs(run)]
        reference = Encoder.load(args.base, adapters=sources).encode(texts)
    print(f"cosine to the unpacked run's vectors: min {np.min(np.sum(ours * reference, axis=1)):.6f}")


if __name__ == "__main__":
    main()
