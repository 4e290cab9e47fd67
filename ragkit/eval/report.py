"""Results as rich tables and a bar chart: one row per (system, task), then systems side by side."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table

from ragkit.eval.run import METRICS, TaskScore


def results_table(rows: list[TaskScore]) -> Table:
    """Every system's metrics per task, as a rich table."""
    table = Table(
        title="retrieval scores (mteb metrics)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("task", overflow="fold")
    table.add_column("system", min_width=max(len(r.system) for r in rows))
    for name in (*METRICS.values(), "queries", "docs"):
        table.add_column(name, justify="right")
    for r in rows:
        docs = f"{r.documents}*" if r.subsample else str(r.documents)
        table.add_row(r.task, r.system, *(f"{r.scores[m]:.4f}" for m in METRICS), str(r.queries), docs)
    if any(r.subsample for r in rows):
        table.caption = (
            "* corpus subsampled, all judged documents kept: not comparable with full-corpus scores"
        )
    return table


def _systems_and_tasks(rows: list[TaskScore]) -> tuple[list[str], list[str], dict]:
    systems = list(dict.fromkeys(r.system for r in rows))
    tasks = list(dict.fromkeys(r.task for r in rows))
    return systems, tasks, {(r.system, r.task): r.ndcg_at_10 for r in rows}


def comparison_table(rows: list[TaskScore]) -> Table:
    """nDCG@10 of each system on each task, the best in bold, and the mean over tasks."""
    systems, tasks, score = _systems_and_tasks(rows)
    table = Table(title="nDCG@10 by system", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task")
    for s in systems:
        table.add_column(s, justify="right")
    for t in [*tasks, "mean"]:
        values = [_mean(score, s, tasks) if t == "mean" else score.get((s, t)) for s in systems]
        best = max((v for v in values if v is not None), default=None)
        cells = ["" if v is None else f"[bold]{v:.4f}[/]" if v == best else f"{v:.4f}" for v in values]
        table.add_row(f"[bold]{t}[/]" if t == "mean" else t, *cells)
    return table


def _mean(score: dict, system: str, tasks: list[str]) -> float | None:
    values = [score[(system, t)] for t in tasks if (system, t) in score]
    return sum(values) / len(values) if len(values) == len(tasks) else None


def plot_comparison(rows: list[TaskScore], path: str | Path) -> Path:
    """Grouped bars: one group per task, one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems, tasks, score = _systems_and_tasks(rows)
    width = 0.8 / len(systems)
    x = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(tasks) * max(1, len(systems) / 2)), 4))
    for i, system in enumerate(systems):
        values = [score.get((system, t), 0.0) for t in tasks]
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, values, width, label=system)
    ax.set_xticks(x, tasks)
    ax.set_ylabel("nDCG@10")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
