"""Figures of what densities are good for: ROC curves of outlier rejection, reject curves, completions."""

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppgen.app.plots.core import image_grid  # noqa: E402

__all__ = ["roc_figure", "reject_figure", "completion_figure", "masked_view"]


def roc_figure(table: dict, title: str | None = None):
    r"""One panel per outlier set, one ROC curve per model.

    Arguments:
        table: name -> {"score": kind, "auroc": {set: float}, "roc": {set: (fpr, tpr)}}, as
            :func:`ppgen.inference.tasks.anomaly.anomaly_table` returns (rows without "roc" are skipped).
    """
    rows = {k: v for k, v in table.items() if v.get("roc")}
    sets = list(dict.fromkeys(s for v in rows.values() for s in v["roc"]))  # in first-seen order
    fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(3.4 * max(len(sets), 1), 3.4), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for name, row in rows.items():
            if s in row["roc"]:
                fpr, tpr = row["roc"][s]
                style = ":" if row["score"].endswith("(not a density)") else "-"
                ax.plot(fpr, tpr, style, lw=1.3, label=f"{name} ({row['auroc'][s]:.3f})")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"outliers: {s}")
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def reject_figure(curves: dict, title: str | None = None):
    r"""Accuracy against coverage, one line per classifier: name -> (coverages, accuracies)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for name, (coverage, accuracy) in curves.items():
        ax.plot(np.asarray(coverage), np.asarray(accuracy), lw=1.4, label=name)
    ax.set(xlabel="coverage (fraction of inputs answered)", ylabel="accuracy of the answers", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or "reject option", fontsize=10)
    fig.tight_layout()
    return fig


def masked_view(x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    r"""Binary images with the hidden pixels shown half grey, (N, C, H, W) in [0, 1]."""
    return torch.where(hidden, torch.full_like(x, 0.5), x.float())


def completion_figure(
    truth: torch.Tensor, hidden: torch.Tensor, completions: dict, levels: int | None = None
):
    r"""A grid: a row of masked inputs, a row of completions per model, a row of the truth.

    Arguments:
        truth: (N, C, H, W) images.
        hidden: (N, C, H, W) bool, True = hidden.
        completions: name -> (N, C, H, W) completions.
        levels: grey levels of categorical data (None for binary / [0, 1]).
    """
    scale = (levels - 1) if levels else 1
    rows = [("masked input", masked_view(truth / scale, hidden))]
    rows += [(name, x / scale) for name, x in completions.items()]
    rows += [("truth", truth / scale)]
    n = truth.shape[0]
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.55 * n + 1.5, 0.75 * len(rows)), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], rows):
        image_grid(ax, x.cpu(), nrow=n)
        ax.text(-0.01, 0.5, name, transform=ax.transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig
