"""The loss curve of a run, one panel per stage, as a PNG."""

from __future__ import annotations

from pathlib import Path


def plot_losses(rows: list[dict], path: Path, title: str) -> None:
    """A PNG of each stage's loss per step (and its moving average) from the training log rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(r["stage"] for r in rows))
    fig, axes = plt.subplots(1, len(stages), figsize=(max(6.5, 4.5 * len(stages)), 3.4), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        steps = [int(r["step"]) for r in rows if r["stage"] == stage]
        losses = [float(r["loss"]) for r in rows if r["stage"] == stage]
        ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=1, label="step")
        window = max(1, len(losses) // 20)
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"mean of {window}")
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
