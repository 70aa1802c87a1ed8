"""GAN figures: the trained discriminator against the optimal one, its map over the plane, diagnostics.

References:
    | Generative Adversarial Networks (Goodfellow et al., 2014) https://arxiv.org/abs/1406.2661
"""

import math

import matplotlib.pyplot as plt
import torch

from ppgen.app.plots.core import _grid

__all__ = ["optimal_discriminator", "discriminator_map", "training_diagnostics"]


@torch.no_grad()
def optimal_discriminator(ax, model, log_p_data, log_p_g, lim: tuple = (-4.0, 4.0), n: int = 400):
    r"""1-D: the trained D(x) beside D*(x) = p_data / (p_data + p_g), with both densities.

    Arguments:
        model: a GAN on 1-D continuous data (event shape (1,)).
        log_p_data: x (N, 1) -> (N,) the data's log density.
        log_p_g: x (N, 1) -> (N,) the generator's log density.
    """
    x = torch.linspace(lim[0], lim[1], n, device=model.device).unsqueeze(1)  # (n, 1)
    d = torch.sigmoid(model.discriminate(x)).cpu()
    lpd, lpg = log_p_data(x).cpu(), log_p_g(x).cpu()
    d_star = torch.sigmoid(lpd - lpg)  # p_d / (p_d + p_g)
    xs = x[:, 0].cpu()
    ax.plot(xs, lpd.exp(), color="tab:blue", lw=1, label="p_data")
    ax.plot(xs, lpg.exp(), color="tab:orange", lw=1, label="p_g")
    ax.plot(xs, d_star, "k--", lw=1.5, label="D*(x)")
    ax.plot(xs, d, color="crimson", lw=1.5, label="trained D(x)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("x")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"max |D - D*| = {float((d - d_star).abs().max()):.3f}", fontsize=9)
    return ax


@torch.no_grad()
def discriminator_map(ax, model, data, samples=None, lim: float | None = None, title: str | None = None):
    r"""2-D: the discriminator's D(x) (or the critic's score) over the plane, with data and samples on top."""
    lim = lim or float(data.x.abs().max()) * 1.15 + 0.1
    xx, yy, pts = _grid(lim, 150)
    score = model.discriminate(pts.to(model.device)).cpu()
    if model.loss != "wasserstein-gp":
        score = torch.sigmoid(score)
    im = ax.contourf(xx.numpy(), yy.numpy(), score.reshape(xx.shape).numpy(), levels=20, cmap="RdBu_r")
    plt.colorbar(im, ax=ax, fraction=0.046)
    ax.scatter(*data.x[:1000].numpy().T, s=1, c="k", alpha=0.4)
    if samples is not None:
        ax.scatter(*samples[:1000].cpu().numpy().T, s=1, c="gold", alpha=0.6)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or ("critic f(x)" if model.loss == "wasserstein-gp" else "D(x)"), fontsize=9)
    return ax


def training_diagnostics(log: list[dict], title: str | None = None):
    r"""A figure of per-epoch (or per-step) logs of the adversarial objective: losses and game value,
    discriminator accuracy, gradient norms and, where measured, coverage."""
    keys = [
        ("losses", ("d_loss", "g_loss", "value")),
        ("accuracy", ("d_acc", "d_acc_real", "d_acc_fake")),
        ("gradient norm", ("d_grad_norm", "g_grad_norm")),
        ("coverage", ("coverage", "hq_fraction")),
    ]
    keys = [(t, [k for k in ks if any(k in r for r in log)]) for t, ks in keys]
    keys = [(t, ks) for t, ks in keys if ks]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6))
    axes = [axes] if len(keys) == 1 else axes
    xkey = "epoch" if log and "epoch" in log[0] else None
    for ax, (t, ks) in zip(axes, keys):
        for k in ks:
            rows = [
                (r[xkey] if xkey else i, r[k]) for i, r in enumerate(log) if k in r and math.isfinite(r[k])
            ]
            if rows:
                ax.plot(*zip(*rows), label=k, lw=1)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel(xkey or "step")
        ax.legend(fontsize=7)
        if t == "gradient norm":
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
