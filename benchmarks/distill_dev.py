"""A distillation run's curve: its loss per step and the dev-split nDCG@10 of each kept snapshot.

    python benchmarks/distill_dev.py runs/smollm2-distill            # finished or still training
    python benchmarks/distill_dev.py runs/smollm2-distill --report    # redraw, score nothing new
    python benchmarks/distill_dev.py runs/distill-0.6 --base llm2vec-smollm2-135m \
        --dev runs/squad-dev500 runs/pubmedqa-dev runs/extra-dev --results distill_dev-0.6   # release 0.6

Snapshots (`snapshot_every`) are LoRA adapters (or tuned weights) over the run's start model; each is
scored dense on the dev splits only (SQuAD's held-out last 2,000 rows, cut to 500 queries, and
PubMedQA's 500 labelled questions, and for release 0.6 extra-dev; never a folder the ablation reports),
step 0 being the start model itself.
The teacher and BM25 are scored on the same splits once: the lines the student is measured
against. Scores accumulate in benchmarks/results/<--results>.json; the chart is <--results>.png.
A run restarted from a kept snapshot (resume_from_snapshot.py) keeps the lost run's later scores
under "first_run", drawn hollow beside the scores of the run that goes on.
Run it beside training under `nice` (nDCG does not depend on load; the run's tokens/s does), or
pause the run meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from ragkit.encoders.loading import TRAINED_WEIGHTS
from ragkit.eval import DenseSearch, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.models import load_eval_model

RESULTS = Path(__file__).resolve().parent / "results"
DEV = [Path("runs/squad-dev500"), Path("runs/pubmedqa-dev")]
MODEL = "smollm2-135m"
BUILTIN_ADAPTERS = (
    Path(__file__).resolve().parents[1] / "ragkit" / "models" / "llm2vec-smollm2-135m" / "adapters"
)
# Release 0.3 of the built-in encoder, where the distillation run of releases 0.4 and 0.5 started:
# its first three adapters.
RELEASE_03_ADAPTERS = [str(BUILTIN_ADAPTERS / a) for a in ("1-mntp", "2-supervised", "3-supervised")]
REFERENCES = {"all-MiniLM-L6-v2 (teacher)": "all-minilm-l6-v2", "bm25": None}
STYLES = ("--", ":")  # the references' lines, in REFERENCES' order


def stage_folder(run: Path) -> Path:
    """Where the run keeps its log and snapshots: `<out>.training/<n>-distill` while it trains,
    `<out>/training` (snapshots under `snapshots/<n>-distill`) once it is saved."""
    training = run.with_name(f"{run.name}.training")
    stages = sorted(training.glob("*-distill")) if training.is_dir() else []
    if stages:
        return stages[-1]
    return run / "training"


def snapshots(folder: Path) -> dict[int, Path]:
    found = list(folder.glob("snapshots/step-*")) + list(folder.glob("snapshots/*-distill/step-*"))
    kept = [p for p in found if (p / "adapter_config.json").is_file() or (p / TRAINED_WEIGHTS).is_file()]
    return {int(p.name.split("-")[1]): p for p in kept}


def losses(folder: Path) -> list[tuple[int, float]]:
    log = folder / "log.csv"
    if not log.is_file():
        return []
    with log.open(newline="") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f) if r["stage"] == "distill"]


def plot(
    curve: list[tuple[int, float]],
    scores: dict,
    references: dict,
    path: Path,
    title: str,
    first_run: dict | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if curve:
        steps, values = zip(*curve, strict=True)
        window = 10
        smooth = [
            sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))
        ]
        left.plot(steps, values, color="#bbb", linewidth=0.8, label="per step")
        left.plot(steps, smooth, color="#1f77b4", label=f"mean of {window}")
        left.set_xlabel("step")
        left.set_ylabel("loss (the stage's: KL, embedding or their sum)")
        left.set_title("distillation loss")
        left.legend()
    for index, folder in enumerate(sorted({f for cells in scores.values() for f in cells})):
        color = f"C{index}"
        points = sorted((int(step), cells[folder]) for step, cells in scores.items() if folder in cells)
        right.plot([s for s, _ in points], [v for _, v in points], marker="o", color=color, label=folder)
        if first_run:
            earlier = sorted((int(step), cells[folder]) for step, cells in first_run["steps"].items())
            steps_, values_ = zip(*earlier, strict=True)
            right.plot(steps_, values_, marker="o", mfc="none", color=color, alpha=0.5)
        for (_, cells), style in zip(references.items(), STYLES, strict=False):
            if folder in cells:
                right.axhline(cells[folder], color=color, linestyle=style, linewidth=1)
    for name, style in zip(references, STYLES, strict=False):
        right.plot([], [], color="#555", linestyle=style, linewidth=1, label=name)
    if first_run:
        right.plot([], [], color="#555", marker="o", mfc="none", alpha=0.5, label=first_run["label"])
    right.set_xlabel("step (0: the start model)")
    right.set_ylabel("nDCG@10, dense")
    right.set_title("dev splits")
    right.legend(fontsize=8, loc="center right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the --out of `ragkit adapt --stages distill`")
    parser.add_argument(
        "--base",
        nargs="+",
        default=[MODEL, *RELEASE_03_ADAPTERS],
        help="the model the run started from, then any adapters merged on it "
        "(default: release 0.3 of the built-in encoder, where its distillation run started)",
    )
    parser.add_argument("--dev", type=Path, nargs="+", default=DEV)
    parser.add_argument("--report", action="store_true", help="only redraw from the stored scores")
    parser.add_argument(
        "--results", default="distill_dev", help="the name of the .json and .png under benchmarks/results"
    )
    args = parser.parse_args()
    store = RESULTS / f"{args.results}.json"
    stored = json.loads(store.read_text()) if store.is_file() else {}
    scores: dict[str, dict[str, float]] = stored.get("steps", {})
    references: dict[str, dict[str, float]] = stored.get("references", {})
    # A run restarted from a kept snapshot (resume_from_snapshot.py): the lost run's later scores.
    first_run: dict | None = stored.get("first_run")

    def save() -> None:
        kept = {"steps": scores, "references": references, **({"first_run": first_run} if first_run else {})}
        store.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")

    folder = stage_folder(args.run)
    if not args.report:
        for name, teacher in REFERENCES.items():
            missing = [d for d in args.dev if d.name not in references.get(name, {})]
            if not missing:
                continue
            system = BM25Search() if teacher is None else DenseSearch(load_eval_model(teacher))
            system.label = name
            for dev in missing:
                (row,) = evaluate([system], [load_task(dev)], output=None)
                references.setdefault(name, {})[dev.name] = round(row.ndcg_at_10, 4)
                save()
                print(f"{name} {dev.name}: nDCG@10 {row.ndcg_at_10:.4f}", flush=True)
        todo = {0: None, **snapshots(folder)}
        for step, adapter in sorted(todo.items()):
            missing = [d for d in args.dev if d.name not in scores.get(str(step), {})]
            if not missing:
                continue
            base, *merged = args.base
            model = load_eval_model(base, adapters=[*merged, *([str(adapter)] if adapter else [])])
            system = DenseSearch(model)
            system.label = f"step {step}"
            for dev in missing:
                (row,) = evaluate([system], [load_task(dev)], output=None)
                scores.setdefault(str(step), {})[dev.name] = round(row.ndcg_at_10, 4)
                save()
                print(f"step {step:>5} {dev.name}: nDCG@10 {row.ndcg_at_10:.4f}", flush=True)
    plot(
        losses(folder),
        scores,
        references,
        RESULTS / f"{args.results}.png",
        f"{args.run.name}: distillation from its teacher",
        first_run,
    )
    for name, cells in references.items():
        print(name, cells)
    for key in sorted(scores, key=int):
        print(key, scores[key])


if __name__ == "__main__":
    main()
