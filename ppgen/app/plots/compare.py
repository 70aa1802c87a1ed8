"""The figures of ``ppgen compare``: sample panels over the data density, test NLL against the
``independent`` baseline, quality per second of training, and sampling cost against sample quality."""

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ppgen.app.diagnostics import plot_limit
from ppgen.app.plots.core import image_grid, square_axes, vector_rows

__all__ = ["sample_panels", "nll_figure", "curve_figure", "cost_figure"]


def _colors(names: list[str]) -> dict:
    cmap = plt.get_cmap("tab20")
    return {n: cmap(i % 20) for i, n in enumerate(names)}


def density_background(ax, data, test, lim: float) -> str:
    r"""Draws the data density on a 2-D panel: contours of the true density where known, else a 2-D
    histogram of the test points. Returns which one it drew."""
    g = torch.linspace(-lim, lim, 160)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    if data.truth is not None:
        p = data.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp().reshape(xx.shape)
        ax.contourf(xx.numpy(), yy.numpy(), p.numpy(), levels=12, cmap="Blues")
        return "true density"
    t = test.x.double().cpu().numpy()
    ax.hist2d(t[:, 0], t[:, 1], bins=60, range=[[-lim, lim], [-lim, lim]], cmap="Blues")
    return "histogram of test points"


def sample_panels(samples: dict, rows: dict, data, test):
    r"""One panel per model: an image grid, or 2-D samples over the data density with the fraction of
    samples outside the panel written on it. ``rows`` maps the model name to its (first seed's) row."""
    cols = min(4, max(1, len(samples)))
    nrows = math.ceil(len(samples) / cols) if samples else 1
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, x) in zip(axes.flat, samples.items()):
        sampler = rows[name].get("sampler", "")
        title = f"{name} ({sampler})" if sampler else name
        if x.ndim == 4:
            levels = data.spec.num_categories if data.spec.base_kind == "categorical" else None
            image_grid(ax, x[:64], levels=levels, title=title)
        elif x.ndim == 2 and x.shape[1] == 2:
            ax.set_axis_on()
            lim = plot_limit(data.x)
            density_background(ax, data, test, lim)
            s = x.double().numpy()
            ax.scatter(s[:, 0], s[:, 1], s=2, c="crimson", alpha=0.5)
            off = rows[name].get("off_support_fraction")
            if off:
                ax.text(0.02, 0.02, f"{off:.1%} of samples off the panel", transform=ax.transAxes, fontsize=7,
                        color="darkred", backgroundcolor="white")  # fmt: skip
            square_axes(ax, lim, title)
        else:
            ax.set_axis_on()
            vector_rows(ax, x.reshape(len(x), -1), title=title)
    fig.tight_layout()
    return fig


def nll_figure(rows: list[dict], data_name: str, clip_factor: float = 1.5):
    r"""Horizontal bars of unconditional test NLL (mean over seeds; blue exact, orange bound or estimate),
    the ``independent`` baseline as a dashed line, and an axis clipped at ``clip_factor`` times the
    baseline's distance from the best model, with the clipped values written at the edge."""
    rows = [r for r in rows if r.get("test_nll_nats") is not None]
    rows.sort(key=lambda r: r["test_nll_nats"])
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.32 * max(1, len(rows))))
    if not rows:
        ax.set_axis_off()
        ax.set_title("no model with an unconditional density", fontsize=9)
        return fig
    values = np.array([r["test_nll_nats"] for r in rows])
    base = next((r["test_nll_nats"] for r in rows if r["model"] == "independent"), None)
    lo = min(values.min(), base if base is not None else values.min())
    ref = base if base is not None else float(np.median(values))
    hi = min(ref + clip_factor * max(ref - lo, 1e-3), values.max()) if base is not None else values.max()
    hi = max(hi, ref)
    left = lo - 0.05 * (hi - lo) - 1e-3
    colors = ["tab:blue" if r.get("test_nll_kind") == "exact" else "tab:orange" for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, np.minimum(values, hi) - left, left=left, color=colors)
    for i, (r, v) in enumerate(zip(rows, values)):
        label = f"{v:.2f} ({r.get('test_nll_kind')})" + (" →" if v > hi else "")
        ax.text(min(v, hi), i, " " + label, va="center", fontsize=7)
    if base is not None:
        ax.axvline(base, color="k", ls="--", lw=1)
        ax.text(base, -0.75, " independent", fontsize=7, va="bottom")
    ax.set_yticks(y, [r["model"] for r in rows], fontsize=8)
    ax.set_xlim(left, hi + 0.3 * (hi - left))
    ax.set_ylim(len(rows) - 0.5, -1.0)
    ax.set_xlabel("test NLL, nats per example (lower is better; axis clipped, → marks a clipped bar)")
    ax.set_title(f"unconditional test NLL on {data_name}", fontsize=9)
    fig.tight_layout()
    return fig


def curve_figure(rows: list[dict]):
    r"""Quality on the validation split against training seconds (log x), every model's curve; one panel
    per quality measure (validation NLL, high-quality fraction, FD-digits, MMD)."""
    kinds = []
    for r in rows:
        c = r.get("curve") or {}
        if c.get("points") and c.get("key") not in [k for k, _ in kinds]:
            kinds.append((c["key"], c["label"]))
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(5.2 * max(1, len(kinds)), 3.8), squeeze=False)
    colors = _colors(list(dict.fromkeys(r["model"] for r in rows)))
    for ax, (key, label) in zip(axes.flat, kinds):
        seen = set()
        for r in rows:
            c = r.get("curve") or {}
            pts = [p for p in c.get("points", []) if p["value"] is not None]
            if c.get("key") != key or not pts:
                continue
            t = [max(p["train_seconds"], 1e-3) for p in pts]
            kind = ("−log p(x|y), " if r.get("conditional") else "") + (c.get("nll_kind") or "")
            name = r["model"] + (f" ({kind})" if kind else "")
            ax.plot(t, [p["value"] for p in pts], "o-", ms=3, color=colors[r["model"]],
                    label=None if r["model"] in seen else name)  # fmt: skip
            seen.add(r["model"])
        ax.set_xscale("log")
        ax.set_xlabel("training seconds (evaluation excluded)")
        ax.set_ylabel(label)
        if key == "val_nll":
            vals = [p["value"] for r in rows for p in (r.get("curve") or {}).get("points", [])
                    if (r.get("curve") or {}).get("key") == key and p["value"] is not None]  # fmt: skip
            if vals:
                lo, med = min(vals), float(np.median(vals))
                top = med + 2 * (med - lo) + 0.1
                ax.set_ylim(lo - 0.05 * abs(lo) - 0.1, top)
                above = []
                for r in rows:
                    c = r.get("curve") or {}
                    got = [p["value"] for p in c.get("points", []) if p["value"] is not None]
                    if c.get("key") == key and got and min(got) > top:
                        above.append(f"{r['model']} ({min(got):.3g})")
                if above:
                    ax.text(0.01, 0.98, "above the axis: " + ", ".join(above), transform=ax.transAxes,
                            fontsize=7, va="top")  # fmt: skip
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
    if not kinds:
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return fig


def cost_figure(rows: list[dict]):
    r"""Seconds per 1000 samples (log x) against sample quality, one line per model through its samplers."""
    kinds = list(
        dict.fromkeys(s["quality_key"] for r in rows for s in r.get("sweep", []) if s["quality"] is not None)
    )
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(6.5 * max(1, len(kinds)), 4.2), squeeze=False)
    colors = _colors(list(dict.fromkeys(r["model"] for r in rows)))
    labels = {"hq_fraction": "high-quality samples (higher is better)",
              "fd_digits": "FD-digits (lower is better)",
              "mmd": "MMD to test (lower is better)"}  # fmt: skip
    for ax, key in zip(axes.flat, kinds):
        seen = set()
        for r in rows:
            pts = [s for s in r.get("sweep", []) if s["quality_key"] == key and s["quality"] is not None]
            if not pts or r["model"] in seen:
                continue
            seen.add(r["model"])
            x = [max(s["seconds_per_1000"], 1e-4) for s in pts]
            y = [s["quality"] for s in pts]
            ax.plot(x, y, "o-", ms=4, color=colors[r["model"]], label=r["model"])
            if len(pts) > 1:
                for s, xi, yi in zip(pts, x, y):
                    ax.annotate(s["sampler"], (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("seconds per 1000 samples (wall, one thread, batched, after a warm-up)")
        ax.set_ylabel(labels.get(key, key))
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
    if not kinds:
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return fig
