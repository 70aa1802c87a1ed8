"""Latent-space figures for encoder/decoder models: interpolation, attribute arithmetic, a 2-D latent map.

Each takes a model with ``encode(x, y=None) -> (B, L)`` and ``decode(z, y=None) -> (B, *event_shape)``
(the VAE family) and returns a matplotlib figure.

References:
    | Auto-Encoding Variational Bayes (Kingma & Welling, 2013) -- the learned 2-D manifold https://arxiv.org/abs/1312.6114
    | Sampling Generative Networks (White, 2016) -- latent interpolation and attribute vectors https://arxiv.org/abs/1609.04468
"""

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ppgen.app.plots.core import image_grid  # noqa: E402
from ppgen.errors import PPGenError  # noqa: E402
from ppgen.inference.posterior import flatten_draws  # noqa: E402

__all__ = [
    "interpolation",
    "attribute_arithmetic",
    "latent_map",
    "posterior_pair_figure",
    "posterior_marginals_figure",
]


def _levels(model):
    return model.spec.num_categories if model.spec.base_kind == "categorical" else None


def _show(ax, model, x, nrow, title):
    if not model.spec.is_image:
        raise PPGenError("latent figures draw images; this model's data are not (C, H, W)")
    image_grid(ax, x, nrow=nrow, levels=_levels(model), title=title)


@torch.no_grad()
def interpolation(model, x_a, x_b, steps: int = 10, y=None):
    r"""Decodes the straight line between the guide means of two inputs.

    Arguments:
        model: a trained encoder/decoder model.
        x_a, x_b: two inputs, each (*event_shape) or (1, *event_shape).
        steps: the number of points on the line, ends included.
        y: a label (int) for conditional models.

    Returns:
        A figure with one row: x_a, the decoded means along z_a -> z_b, x_b.
    """
    x = torch.stack([x_a.reshape(model.spec.event_shape), x_b.reshape(model.spec.event_shape)]).to(
        model.device
    )
    labels = None if y is None else torch.full((2,), int(y), device=x.device)
    z = model.encode(x, labels)  # (2, L)
    t = torch.linspace(0, 1, steps, device=z.device, dtype=z.dtype)[:, None]
    path = (1 - t) * z[0] + t * z[1]  # (steps, L)
    decoded = model.decode(path, None if y is None else torch.full((steps,), int(y), device=x.device))
    row = torch.cat([x[:1], decoded, x[1:]])
    fig, ax = plt.subplots(figsize=(1.0 * (steps + 2), 1.3))
    _show(ax, model, row, steps + 2, "interpolation in z (ends: the inputs)")
    return fig


@torch.no_grad()
def attribute_arithmetic(model, data, source: int, target: int, n: int = 8):
    r"""Moves examples of class ``source`` along the difference of the class means of z towards ``target``.

    z' = z + (mean_z[target] - mean_z[source]), with the class means of the guide's means over ``data``
    (an unconditional model: the labels are used only here).

    Returns:
        A figure with three rows: n inputs of class ``source``, their reconstructions, the moved codes
        decoded.
    """
    if data.y is None:
        raise PPGenError("attribute arithmetic needs labelled data")
    if model.conditional:
        raise PPGenError(
            "attribute arithmetic moves an unconditional model's codes; a conditional model takes y directly"
        )
    x, y = data.x.to(model.device), data.y.to(model.device)
    z = model.encode(x)
    for c in (source, target):
        if not (y == c).any():
            raise PPGenError(f"class {c} has no examples in the data")
    direction = z[y == target].mean(0) - z[y == source].mean(0)
    picked = (y == source).nonzero().squeeze(1)[:n]
    rows = torch.cat([x[picked], model.decode(z[picked]), model.decode(z[picked] + direction)])
    fig, ax = plt.subplots(figsize=(1.0 * len(picked), 3.3))
    _show(
        ax,
        model,
        rows,
        len(picked),
        f"class {source}: inputs, reconstructions, + (mean z[{target}] - mean z[{source}])",
    )
    return fig


@torch.no_grad()
def latent_map(model, data, n: int = 1000, grid: int = 12, span: float = 2.5):
    r"""The guide means of ``n`` examples in 2-D, coloured by label, and the decoded latent plane.

    With L > 2 the codes are projected on their two principal directions, and the decoded plane is
    that 2-D slice through the mean code. The plane spans ``span`` standard deviations of the codes.

    Returns:
        A figure with two panels: the scatter of codes and a grid x grid mosaic of decoded means.
    """
    x = data.x[:n].to(model.device)
    labels = data.y[:n] if data.y is not None else None
    z = model.encode(x, labels.to(model.device) if model.conditional else None)  # (n, L)
    center = z.mean(0)
    if model.latent_dim > 2:
        _, _, v = torch.linalg.svd(z - center, full_matrices=False)
        basis = v[:2]  # (2, L)
    else:
        basis = torch.eye(2, dtype=z.dtype, device=z.device)
    coords = (z - center) @ basis.T  # (n, 2)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 4.3))
    c = labels.cpu().numpy() if labels is not None else "tab:blue"
    points = ax0.scatter(*coords.cpu().numpy().T, c=c, cmap="tab10", s=6)
    if labels is not None:
        fig.colorbar(points, ax=ax0, label="label")
    ax0.set_title(
        "guide means" + (" (first two principal directions)" if model.latent_dim > 2 else ""), fontsize=9
    )
    sd = coords.std(0)
    a = torch.linspace(-span, span, grid, device=z.device, dtype=z.dtype)
    ii, jj = torch.meshgrid(a, a.flip(0), indexing="xy")
    plane = center + (ii.reshape(-1, 1) * sd[0]) * basis[0] + (jj.reshape(-1, 1) * sd[1]) * basis[1]
    y = None
    if model.conditional:
        y = torch.zeros(len(plane), dtype=torch.long, device=z.device)
    _show(
        ax1,
        model,
        model.decode(plane, y),
        grid,
        "decoded plane" + (" (label 0)" if model.conditional else ""),
    )
    fig.tight_layout()
    return fig


def _show_point(ax, x, levels=None, title="the data point"):
    r"""The inspected data point: an image when it is one, else its coordinates as bars."""
    if x.ndim == 3:
        image_grid(ax, x[None], nrow=1, levels=levels, title=title)
    else:
        values = x.reshape(-1).numpy()
        ax.bar(range(len(values)), values, color="0.3")
        ax.set_title(title, fontsize=8)


def _inspect_draws(report):
    nuts = flatten_draws(report["nuts"], report["sites"])
    guide = flatten_draws(report["guide"], report["sites"])
    return nuts, guide


def posterior_pair_figure(report, levels=None):
    r"""Pair plot of the inspected point's latent posterior: NUTS (blue) and the guide (orange) over
    ``report["pair_dims"]`` (all coordinates, or the 8 with the largest KL to the prior), the point inset.

    Arguments:
        report: the dict of :func:`ppgen.inference.posterior.inspect_point`.
    """
    nuts, guide = _inspect_draws(report)
    dims, labels = report["pair_dims"], report["labels"]
    k = len(dims)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k + 1.5, 1.9 * k + 0.5), squeeze=False)
    for i, u in enumerate(dims):
        for j, v in enumerate(dims):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(nuts[:, u], bins=30, density=True, color="tab:blue", alpha=0.5)
                ax.hist(
                    guide[:, u], bins=30, density=True, histtype="step", color="tab:orange", linewidth=1.5
                )
            else:
                ax.scatter(nuts[:, v], nuts[:, u], s=2, alpha=0.25, color="tab:blue")
                ax.scatter(guide[:, v], guide[:, u], s=2, alpha=0.25, color="tab:orange")
            if i == k - 1:
                ax.set_xlabel(labels[v], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(labels[u], fontsize=8)
            ax.tick_params(labelsize=6)
    which = (
        f"all {k} latent coordinates"
        if k == len(labels)
        else f"the {k} of {len(labels)} latent coordinates with the largest KL(q || p)"
    )
    fig.suptitle(f"p(z | x) by NUTS (blue) vs the guide q(z | x) (orange): {which}", fontsize=9)
    inset = fig.add_axes([0.78, 0.72, 0.18, 0.18]) if k > 1 else fig.add_axes([0.72, 0.6, 0.25, 0.25])
    _show_point(inset, report["x"], levels)
    return fig


def posterior_marginals_figure(report, levels=None, columns: int = 4):
    r"""Each latent coordinate's marginal: NUTS's histogram with the guide's overlaid, and the data point.

    Arguments:
        report: the dict of :func:`ppgen.inference.posterior.inspect_point`.
    """
    nuts, guide = _inspect_draws(report)
    dims, labels = report["pair_dims"], report["labels"]
    rows = -(-(len(dims) + 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows), squeeze=False)
    axes = axes.ravel()
    _show_point(axes[0], report["x"], levels)
    for ax, u in zip(axes[1:], dims):
        ax.hist(nuts[:, u], bins=40, density=True, color="tab:blue", alpha=0.5, label="NUTS p(z | x)")
        ax.hist(
            guide[:, u],
            bins=40,
            density=True,
            histtype="step",
            color="tab:orange",
            linewidth=1.5,
            label="guide q(z | x)",
        )
        ax.set_title(f"{labels[u]} (KL {float(report['kl_per_dim'][u]):.2f})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(dims) + 1 :]:
        ax.axis("off")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    return fig
