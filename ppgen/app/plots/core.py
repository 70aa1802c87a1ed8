"""The figures every family shares: image grids, 2-D samples over the true density, NLL bars, curves."""

import math

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = [
    "image_grid",
    "scatter_over_density",
    "square_axes",
    "vector_rows",
    "draw_samples",
    "sample_figure",
    "nll_bars",
    "training_curve",
]


def image_grid(
    ax, images: torch.Tensor, nrow: int | None = None, levels: int | None = None, title: str | None = None
):
    r"""Draws images (N, C, H, W) as one grid on ``ax``: grey (ink dark) from the first channel, or in
    colour when C = 3 (channels R, G, B).

    Arguments:
        levels: the number of levels per channel (categorical data), used to scale to [0, 1]; None for
            [0, 1] data.
    """
    x = images.detach().float().cpu()
    if levels:
        x = x / (levels - 1)
    colour = x.shape[1] == 3
    x = x.clamp(0, 1).permute(0, 2, 3, 1) if colour else x.clamp(0, 1)[:, 0]  # (N, H, W, 3) or (N, H, W)
    n, h, w = x.shape[:3]
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    border = 0.85 if colour else 0.25  # light grey either way
    canvas = np.full((ncol * (h + 1) + 1, nrow * (w + 1) + 1, *x.shape[3:]), border)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i].numpy()
    ax.imshow(canvas, cmap=None if colour else "gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _grid(lim: float, n: int = 200):
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def scatter_over_density(
    ax, samples: torch.Tensor, data=None, title: str | None = None, lim: float | None = None
):
    r"""2-D samples (N, 2) as dots over the true density's contours (or the data, where none is known)."""
    s = samples.detach().float().cpu().numpy()
    if lim is None:
        ref = data.x if data is not None else samples
        lim = float(ref.abs().max()) * 1.15 + 0.1
    if data is not None and data.truth is not None:
        xx, yy, pts = _grid(lim)
        p = data.log_prob(pts).exp().reshape(xx.shape)
        ax.contourf(xx.numpy(), yy.numpy(), p.numpy(), levels=12, cmap="Blues")
    elif data is not None:
        ax.scatter(*data.x[:2000].cpu().numpy().T, s=2, c="lightsteelblue", alpha=0.6)
    ax.scatter(s[:, 0], s[:, 1], s=2, c="crimson", alpha=0.5)
    return square_axes(ax, lim, title)


def square_axes(ax, lim: float | None = None, title: str | None = None):
    r"""A square 2-D panel over [-lim, lim]^2 without ticks, with an optional small title."""
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def vector_rows(ax, samples: torch.Tensor, title: str | None = None):
    r"""Vectors (N, D) with D != 2, one row each, as a heat map."""
    ax.imshow(
        samples.detach().float().cpu().numpy()[:64], aspect="auto", cmap="viridis", interpolation="nearest"
    )
    ax.set_xlabel("dimension")
    ax.set_ylabel("sample")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def draw_samples(ax, samples: torch.Tensor, data, title: str | None = None):
    r"""Samples as the data calls for: an image grid, a 2-D scatter over the true density, or rows."""
    if samples.ndim == 4:
        levels = data.spec.num_categories if data.spec.base_kind == "categorical" else None
        return image_grid(ax, samples[:64], levels=levels, title=title)
    if samples.ndim == 2 and samples.shape[1] == 2:
        return scatter_over_density(ax, samples, data, title=title)
    return vector_rows(ax, samples.reshape(len(samples), -1), title=title)


def sample_figure(samples: torch.Tensor, data, title: str | None = None):
    r"""One figure of a model's samples (see :func:`draw_samples`)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_samples(ax, samples, data, title)
    return fig


def nll_bars(ax, rows: list[dict], key: str = "test_nll_nats"):
    r"""A bar per model with its test NLL, hatched where the number is a bound or an estimate."""
    rows = [r for r in rows if r.get(key) is not None]
    names = [r["model"] for r in rows]
    values = [r[key] for r in rows]
    bars = ax.bar(
        names, values, color=["tab:blue" if r.get("test_nll_kind") == "exact" else "tab:orange" for r in rows]
    )
    for b, r in zip(bars, rows):
        ax.annotate(
            r.get("test_nll_kind") or "",
            (b.get_x() + b.get_width() / 2, b.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylabel("test NLL (nats / example)")
    ax.tick_params(axis="x", rotation=45)
    return ax


def training_curve(ax, log: list[dict], key: str = "loss"):
    r"""The per-epoch training loss."""
    ax.plot([r["epoch"] for r in log], [r[key] for r in log])
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    return ax
