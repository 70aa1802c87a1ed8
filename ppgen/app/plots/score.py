"""Figures of score and energy models: the learned score field over the density, and samples as the
Langevin chain runs."""

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppgen.app.plots.core import image_grid  # noqa: E402
from ppgen.errors import PPGenError  # noqa: E402

__all__ = ["score_field", "langevin_snapshots"]


def _default_sigma(model) -> float | None:
    r"""For noise-conditional models, the ladder level nearest 0.1 standardized units, in data units."""
    sigmas = getattr(model, "sigmas", None)
    if sigmas is None:
        return None
    i = int((sigmas.log() - torch.log(torch.tensor(0.1))).abs().argmin())
    return float(sigmas[i] * model.standardize.scale)


def score_field(ax, model, data, *, sigma: float | None = None, n: int = 21, lim: float | None = None):
    r"""The learned score (grad_x log p; for an EBM -grad_x E) as arrows over the density of 2-D data.

    Arrows show the direction, their colour the log of the magnitude; the background is the true
    density where the data set has one, else the data.

    Arguments:
        ax: the matplotlib axes.
        model: a fitted ``smld`` or ``ebm`` (anything with ``score(x, sigma)``) for 2-D data.
        data: the data set (its true density or its points are drawn).
        sigma: the noise level of a noise-conditional score, in data units (default: the level
            nearest 0.1 standardized units); ignored by an EBM.
        n: arrows per axis.
        lim: the half-width of the square shown (default from the data).
    """
    if tuple(model.spec.event_shape) != (2,) or not hasattr(model, "score"):
        raise PPGenError(
            f"score_field needs a score or energy model of 2-D data, "
            f"got {getattr(model, 'name', model)} on {model.spec.event_shape}"
        )
    lim = lim or float(data.x.abs().max()) * 1.15 + 0.1
    g = torch.linspace(-lim, lim, 200)
    if data.truth is not None:
        xx, yy = torch.meshgrid(g, g, indexing="xy")
        p = data.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp().reshape(xx.shape)
        ax.contourf(xx.numpy(), yy.numpy(), p.numpy(), levels=12, cmap="Blues")
    else:
        ax.scatter(*data.x[:2000].cpu().numpy().T, s=2, c="lightsteelblue", alpha=0.6)
    a = torch.linspace(-lim, lim, n)
    ax_, ay_ = torch.meshgrid(a, a, indexing="xy")
    pts = torch.stack([ax_.reshape(-1), ay_.reshape(-1)], 1).to(model.device)
    sigma = _default_sigma(model) if sigma is None else sigma
    with torch.no_grad():
        s = model.score(pts, sigma).double().cpu()  # (n^2, 2)
    norm = s.norm(dim=1).clamp_min(1e-12)
    d = (s / norm.unsqueeze(1)).numpy()
    q = ax.quiver(
        ax_.numpy(),
        ay_.numpy(),
        d[:, 0].reshape(n, n),
        d[:, 1].reshape(n, n),
        np.log10(norm.numpy()).reshape(n, n),
        cmap="autumn",
        scale=n * 1.2,
        width=0.004,
    )
    plt.colorbar(q, ax=ax, fraction=0.046, pad=0.04, label="log10 |score|")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    label = "-grad E" if sigma is None else f"score at sigma = {sigma:.3g}"
    ax.set_title(f"{model.name}: {label}", fontsize=9)
    return ax


def langevin_snapshots(model, n: int, steps_to_show, lim: float | None = None):
    r"""Samples of n chains at the given Langevin steps: one panel per step, a 2-D scatter or an image grid.

    Arguments:
        model: a fitted ``smld`` or ``ebm`` (anything with ``sample_chain(n, steps)``).
        n: the number of chains.
        steps_to_show: steps in [0, model.num_sampling_steps] (0 is the starting noise).
        lim: the half-width of the 2-D panels (default: from the last snapshot).

    Returns:
        A matplotlib Figure.
    """
    if not hasattr(model, "sample_chain"):
        raise PPGenError(
            f"langevin_snapshots needs a chain-sampled model (smld, ebm), got {getattr(model, 'name', model)}"
        )
    shots = model.sample_chain(n, steps_to_show)
    steps = sorted(shots)
    fig, axes = plt.subplots(1, len(steps), figsize=(2.4 * len(steps), 2.6), squeeze=False)
    spec = model.spec
    if lim is None and spec.event_shape == (2,):
        lim = float(shots[steps[-1]].abs().max()) * 1.2 + 0.1
    for ax, step in zip(axes[0], steps):
        x = shots[step].detach().float().cpu()
        title = f"step {step}"
        if spec.is_image:
            image_grid(
                ax,
                x[:64],
                levels=spec.num_categories if spec.base_kind == "categorical" else None,
                title=title,
            )
        elif spec.event_shape == (2,):
            ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, c="crimson", alpha=0.5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
        else:
            raise PPGenError(
                f"langevin_snapshots draws 2-D points or images, not event shape {spec.event_shape}"
            )
    fig.suptitle(f"{model.name}: samples along the Langevin chain", fontsize=10)
    fig.tight_layout()
    return fig
