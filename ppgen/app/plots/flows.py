"""Figures for flows: the learned density beside the true one, the warped grid, samples."""

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ppgen.app.plots.core import draw_samples, scatter_over_density, square_axes  # noqa: E402

__all__ = ["density_heatmap", "warped_grid", "flow_figure"]


def _grid(lim: float, n: int, like: torch.Tensor):
    g = torch.linspace(-lim, lim, n, dtype=like.dtype, device=like.device)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


@torch.no_grad()
def density_heatmap(
    ax, log_prob, lim: float, n: int = 200, title: str | None = None, like: torch.Tensor | None = None
):
    r"""exp(log_prob(x)) on an n x n grid over [-lim, lim]^2 as an image on ``ax``.

    Arguments:
        log_prob: a function (B, 2) -> (B,), e.g. ``model.log_prob`` or ``data.log_prob``.
        like: a tensor whose device and dtype the grid takes (default: CPU float32).
    """
    like = torch.zeros(()) if like is None else like
    xx, _, pts = _grid(lim, n, like)
    p = torch.cat([log_prob(c).exp() for c in pts.split(10_000)]).reshape(xx.shape)
    ax.imshow(
        p.float().cpu().numpy(),
        origin="lower",
        extent=(-lim, lim, -lim, lim),
        cmap="magma",
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


@torch.no_grad()
def warped_grid(
    ax,
    model,
    lim: float | None = None,
    base_lim: float = 3.0,
    lines: int = 13,
    points: int = 200,
    title: str | None = None,
):
    r"""Where the flow sends the base distribution: a square grid of lines in z-space, pushed to data space.

    Arguments:
        model: a 2-D flow with ``normalizing_transform()`` (data -> base).
        base_lim: the grid covers [-base_lim, base_lim]^2 in the base space (3 standard deviations).
    """
    like = model.base_loc
    f_inv = model.normalizing_transform().inv
    ticks = torch.linspace(-base_lim, base_lim, lines, dtype=like.dtype, device=like.device)
    t = torch.linspace(-base_lim, base_lim, points, dtype=like.dtype, device=like.device)
    for i, c in enumerate(ticks):
        for line in (torch.stack([t, c.expand_as(t)], 1), torch.stack([c.expand_as(t), t], 1)):
            x = f_inv(line).float().cpu().numpy()
            ax.plot(x[:, 0], x[:, 1], lw=0.6, color=plt.cm.viridis(i / (lines - 1)))
    return square_axes(ax, lim, title)


def flow_figure(model, data, n_samples: int = 2000, lim: float | None = None):
    r"""One row: the true density (or the data), the model's density, the warped grid, samples.

    For image flows: a grid of samples only.
    """
    if len(model.spec.event_shape) != 1 or model.spec.event_shape[0] != 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        draw_samples(ax, model.sample(64), data, title=f"{model.name} samples")
        return fig
    lim = lim if lim is not None else float(data.x.abs().max()) * 1.1
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    if data.truth is not None:
        density_heatmap(axes[0], data.log_prob, lim, title=f"true density ({data.name})")
    else:
        scatter_over_density(axes[0], data.x[:n_samples], None, title=f"data ({data.name})", lim=lim)
    model.eval()
    like = model.base_loc
    density_heatmap(
        axes[1], lambda x: model.log_prob(x.to(like)), lim, title=f"{model.name} density", like=like
    )
    warped_grid(axes[2], model, lim=lim, title="base grid pushed through the flow")
    scatter_over_density(axes[3], model.sample(n_samples), data, title=f"{model.name} samples", lim=lim)
    fig.tight_layout()
    return fig
