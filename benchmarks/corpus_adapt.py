"""Label-free corpus adaptation: does training on synthetic queries for a folder's own corpus help?

    python benchmarks/corpus_adapt.py --folders cranfield cisi scifact

For each folder, `ragkit adapt --stages synthetic` adapts the built-in encoder to the folder's
corpus file alone (never its queries or qrels): SmolLM2-135M-Instruct writes a query for each of
768 sampled passages, BM25's round trip filters them, hard negatives are mined with the encoder,
and 24 steps of 32 train a LoRA on top (`--preset cpu-small`). With `--teacher all-minilm-l6-v2`
a second encoder is adapted on the same written queries GPL's way: the teacher scores each query's
candidates (its passage and one mined from the whole corpus by the teacher and BM25), and the
student learns those scores instead of the passage a query came from as its only positive.

An adapted encoder already under --runs (runs/corpus-<folder>-<built-in>, with -gpl before the
digest for the teacher's; <built-in> is the digest of the release it started from) is reused, and an
interrupted one resumes; a system whose encoder is gone keeps its scores in corpus_adapt.json if they
were measured with the same release (`--rerun` measures it again). A new release of the built-in
measures every system of a folder again, so no row compares encoders started from different releases.
Then BM25, the built-in encoder and the adapted ones are scored on the folder's queries with the same
subsampling and document cap as benchmarks/ablation.py. Writes benchmarks/results/corpus_adapt.json,
.md and .png.
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import date
from pathlib import Path

from ragkit.adapt import adapt, stage_configs
from ragkit.encoders.loading import adapter_digests
from ragkit.eval import DenseSearch, TaskScore, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.models import load_eval_model
from ragkit.eval.report import plot_comparison
from ragkit.eval.search import FusionSearch
from ragkit.retrieval.fusion import DEFAULT_METHOD, DEFAULT_WEIGHT

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
BASE = "llm2vec-smollm2-135m"


ADAPTED, GPL = "adapted to the corpus", "adapted, teacher labels (GPL)"
# Cells measured before cells recorded their start: all of them started from release 0.3
# (the built-in's adapters 1-mntp, 2-supervised, 3-supervised), shipped until 2026-12-03.
RELEASE_03 = "release 0.3"


def built_in_release() -> str:
    """The digest of the built-in's last adapter: which release of it a cell was measured with."""
    return adapter_digests(BASE, [])[-1][:8]


def run_folder(folder: str, runs: Path, teacher: str | None, release: str) -> Path:
    """Where the built-in, adapted to one folder, is kept: named by the release it started from."""
    return runs / f"corpus-{folder}{'-gpl' if teacher else ''}-{release}"


def adapted_encoder(out: Path, folder: str, preset: str, teacher: str | None = None) -> Path:
    """`out` (a `run_folder`): the built-in encoder adapted to the folder's corpus file only."""
    if not out.is_dir():
        corpus = DATA / folder / "corpus.jsonl.gz"  # the documents; queries and qrels stay unseen
        settings = {"synthetic": {"teacher": teacher}}
        adapt(
            BASE,
            out,
            stage_configs(["synthetic"], preset, data={"synthetic": str(corpus)}, settings=settings),
        )
    return out


def training_summary(encoder: Path) -> dict:
    """What the synthetic stage wrote and how long it trained, from the files adapt keeps."""
    training = encoder / "training"
    counts = json.loads(next(training.glob("*-pairs.json")).read_text())
    with (training / "log.csv").open() as f:
        log = list(csv.DictReader(f))
    return {**counts, "steps": len(log), "train_seconds": round(float(log[-1]["elapsed_s"]))}


def write_report(cells: dict) -> None:
    systems = ["bm25", BASE, ADAPTED, "hybrid, built-in", "hybrid, adapted", GPL, "hybrid, GPL"]
    folders = sorted({key.split("|")[1] for key in cells}, key=lambda f: list(cells).index(f"bm25|{f}"))
    releases: dict[str, list[str]] = {}
    for folder in folders:
        start = cells[f"{BASE}|{folder}"].get("built_in", RELEASE_03)
        releases.setdefault(start if start == RELEASE_03 else f"the built-in {start}", []).append(folder)
    starts = "; ".join(f"{release} ({', '.join(names)})" for release, names in releases.items())
    lines = [
        "# Label-free corpus adaptation (synthetic queries)",
        "",
        "`python benchmarks/corpus_adapt.py`: the built-in encoder adapted to each folder's corpus alone",
        "(`ragkit adapt --model llm2vec-smollm2-135m --stages synthetic --preset cpu-small --corpus",
        "<folder>/corpus.jsonl.gz`), scored on the folder's queries, which training never saw. nDCG@10",
        "with the subsampling and document cap of ablation.md (2 CPU cores). Hybrid: ragkit query's "
        f"fallback fusion ({DEFAULT_METHOD} with BM25, dense weight {DEFAULT_WEIGHT:g}) with each encoder; "
        "a score marked (w x) was measured at dense weight x, an earlier default, and each cell keeps the "
        "date it was measured in corpus_adapt.json ('measured'; none: 2026-12-01, fp32 encoding). "
        f"The built-in and every adaptation of it start from: {starts}.",
        "",
        "| folder | "
        + " | ".join(systems)
        + " | dense change | GPL dense change | passages | queries written | kept | train time"
        + " | GPL train time |",
        "|---" * (len(systems) + 8) + "|",
    ]
    for folder in folders:
        score = {s: cells.get(f"{s}|{folder}", {}).get("ndcg_at_10") for s in systems}
        info = cells.get(f"{ADAPTED}|{folder}", {}).get("training", {})
        gpl = cells.get(f"{GPL}|{folder}", {}).get("training", {})
        change, gpl_change = (
            f"{100 * (score[s] - score[BASE]):+.1f}"
            if score[BASE] is not None and score[s] is not None
            else "–"
            for s in (ADAPTED, GPL)
        )
        values = [_cell(cells.get(f"{s}|{folder}"), hybrid=s.startswith("hybrid")) for s in systems]
        lines.append(
            f"| {folder} | "
            + " | ".join(values)
            + f" | {change} | {gpl_change} | {info.get('passages', '–')} | {info.get('written', '–')} | "
            f"{info.get('kept', '–')} | {_minutes(info)} | {_minutes(gpl)} |"
        )
    (RESULTS / "corpus_adapt.md").write_text("\n".join(lines) + "\n")
    rows = [  # every folder scored so far, not only this run's
        TaskScore(key.split("|")[0], key.split("|")[1], "test", cell["scores"], 0, 0, 0.0)
        for key, cell in cells.items()
    ]
    plot_comparison(rows, RESULTS / "corpus_adapt.png")


def _cell(cell: dict | None, hybrid: bool) -> str:
    if cell is None:
        return "–"
    weight = cell.get("weight", 0.4)  # cells from before the weight was recorded: the default then
    note = f" (w {weight:g})" if hybrid and weight != DEFAULT_WEIGHT else ""
    return f"{100 * cell['ndcg_at_10']:.1f}{note}"


def _minutes(training: dict) -> str:
    return f"{round(training['train_seconds'] / 60)} min" if training else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="*", default=["cranfield", "cisi", "scifact"])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--teacher", help="also adapt with this teacher's labels (GPL)")
    parser.add_argument("--rerun", action="store_true", help="measure again what corpus_adapt.json holds")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the json")
    parser.add_argument("--max-docs", type=int, default=1500)
    parser.add_argument("--max-doc-tokens", type=int, default=128)
    args = parser.parse_args()

    store = RESULTS / "corpus_adapt.json"
    cells = json.loads(store.read_text()) if store.is_file() else {}
    today = date.today().isoformat()
    release = built_in_release()
    if args.report:
        args.folders = []
    for folder in args.folders:
        lexical = BM25Search()
        base = DenseSearch(load_eval_model(BASE), max_doc_tokens=args.max_doc_tokens)
        # ragkit query's default search, with each encoder
        systems = {
            "bm25": lexical,
            BASE: base,
            "hybrid, built-in": FusionSearch(base, lexical, method=DEFAULT_METHOD, weight=DEFAULT_WEIGHT),
        }
        encoders = {}
        for label, hybrid, teacher in [
            (ADAPTED, "hybrid, adapted", None),
            (GPL, "hybrid, GPL", args.teacher),
        ]:
            if label == GPL and not teacher:
                continue
            out = run_folder(folder, args.runs, teacher, release)
            measured = cells.get(f"{label}|{folder}", {}).get("built_in", RELEASE_03) == release
            if not out.is_dir() and measured and not args.rerun:
                continue  # measured before, with this release of the built-in; its encoder is gone
            encoders[label] = adapted_encoder(out, folder, args.preset, teacher)
            adapted = DenseSearch(load_eval_model(str(encoders[label])), max_doc_tokens=args.max_doc_tokens)
            systems[label] = adapted
            systems[hybrid] = FusionSearch(adapted, lexical, method=DEFAULT_METHOD, weight=DEFAULT_WEIGHT)
        for label, system in systems.items():
            system.label = label
        scored = evaluate(
            list(systems.values()), [load_task(DATA / folder)], output=None, max_docs=args.max_docs
        )
        for label, row in zip(systems, scored, strict=True):
            row.task = folder
            cell = {
                "ndcg_at_10": row.ndcg_at_10,
                "scores": row.scores,
                "measured": today,
                "built_in": release,
            }
            cells[f"{label}|{folder}"] = cell
            if label.startswith("hybrid"):
                cell["weight"] = DEFAULT_WEIGHT
        for label, encoder in encoders.items():
            cells[f"{label}|{folder}"]["training"] = training_summary(encoder)
        store.write_text(json.dumps(cells, indent=1) + "\n")
    write_report(cells)
    print((RESULTS / "corpus_adapt.md").read_text())


if __name__ == "__main__":
    main()
