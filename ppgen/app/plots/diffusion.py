"""Diffusion figures: the denoising trajectory x_T -> x_0, as 2-D scatters or as image strips."""

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ppgen.app.plots.core import image_grid, scatter_over_density  # noqa: E402

__all__ = ["denoising_trajectory"]


def _pick(states: list, k: int) -> list:
    r"""k states evenly spaced along the chain, always the first (x_T) and the last (x_0)."""
    k = max(2, min(k, len(states)))
    idx = torch.linspace(0, len(states) - 1, k).round().long().unique().tolist()
    return [states[i] for i in idx]


@torch.no_grad()
def denoising_trajectory(
    model,
    n: int = 1000,
    steps_to_show: int = 6,
    method: str = "ancestral",
    steps: int | None = None,
    data=None,
):
    r"""The reverse process of a diffusion model, from noise x_T to data x_0.

    Arguments:
        model: a fitted :class:`~ppgen.models.diffusion.DDPM`.
        n: chains (2-D data) or images (at most 8 rows are drawn).
        steps_to_show: how many states to draw, evenly spaced along the chain.
        method: "ancestral" or "ddim"; ``steps``: DDIM's S.
        data: for 2-D data, the data set whose true density (or points) is drawn underneath.

    Returns:
        A matplotlib Figure: one scatter per state for 2-D data; for images, one row per image
        and one column per state (x_0 is the final, discretized sample).
    """
    model.eval()
    n = n if len(model.spec.event_shape) == 1 else min(n, 8)
    chain = list(model.trajectory(n, steps, method))
    shown = _pick(chain, steps_to_show)
    states = [model.from_model_space(z) for _, z in shown[:-1]] + [model.finish(shown[-1][1])]
    labels = [f"t = {t}" for t, _ in shown]
    if len(model.spec.event_shape) == 1 and model.spec.event_shape[0] == 2:
        fig, axes = plt.subplots(1, len(states), figsize=(2.6 * len(states), 2.8))
        lim = None if data is None else float(data.x.abs().max()) * 1.15 + 0.1
        for ax, x, label in zip(axes, states, labels):
            scatter_over_density(ax, x.cpu(), data, title=label, lim=lim)
        fig.suptitle(f"{model.name}: denoising trajectory ({method})", fontsize=10)
        return fig
    if not model.spec.is_image:
        raise ValueError(
            f"denoising_trajectory draws 2-D points or images, not event shape {model.spec.event_shape}"
        )
    k = model.spec.num_categories
    images = torch.stack(states, dim=1).flatten(0, 1).cpu()  # (n * S, C, H, W), row-major: image i, state s
    if not k:
        lo, hi = images.amin(), images.amax()
        images = (images - lo) / (hi - lo).clamp_min(1e-8)
    fig, ax = plt.subplots(figsize=(1.0 * len(states) + 0.5, 1.0 * n + 0.5))
    image_grid(ax, images, nrow=len(states), levels=k or None)
    ax.set_title(f"{model.name} ({method}): " + "  ".join(labels), fontsize=8)
    return fig
