"""The comparison harness: trained models on the same data, scored the same way, in one report.

``compare`` plans a grid of cells (model x seed) from each model's quick preset (quick mode) or its
default config and ``fit_defaults``, runs it in parallel processes through the run cache
(:mod:`ppgen.app.grid`, :mod:`ppgen.app.cache`), flags what a reader must know
(:mod:`ppgen.app.diagnostics`) and writes ``report.md``, ``report.json``, a self-contained
``report.html`` and the figures (:mod:`ppgen.app.report`, :mod:`ppgen.app.plots.compare`).
"""

import os
import time
from pathlib import Path

import matplotlib.pyplot as plt

from ppgen.app.cache import cache_dir
from ppgen.app.diagnostics import FLAGS, OFF_SUPPORT_LIMIT, add_flags
from ppgen.app.grid import VALID_FRACTION, Cell, run_grid
from ppgen.app.plots.compare import cost_figure, curve_figure, nll_figure, sample_panels
from ppgen.app.plots.core import sample_figure
from ppgen.app.report import format_table, summarize, table, write_documents
from ppgen.base import get, model_names, supports
from ppgen.data import Dataset

__all__ = [
    "compare",
    "plan",
    "applicable_models",
    "format_table",
    "default_jobs",
    "QUICK_MAX_SECONDS",
    "QUICK_NUM_SAMPLES",
]

QUICK_MAX_SECONDS = 120.0  # quick mode's budget when neither --budget-seconds nor the preset sets one
QUICK_NUM_SAMPLES = 100  # K of the test IWAE estimate in quick mode
NLL_KINDS = (
    "`exact` is log p(x); `iwae-K` an importance-sampled estimate with K samples (a stochastic lower bound on "
    "log p(x), so the NLL is an upper bound); `elbo` the variational bound; `dequantized` the dequantized "
    "bound on the discrete likelihood; `quadrature` an unnormalized model normalized numerically on a grid. "
    "Implicit models have no density."
)


def applicable_models(data: Dataset, names: list[str] | None = None) -> list[str]:
    r"""The requested (default: all registered) models that can model this data."""
    names = names or model_names()
    return [n for n in names if supports(get(n), data.spec) is None]


def default_jobs() -> int:
    r"""The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def plan(
    names: list[str],
    data: Dataset,
    quick: bool = False,
    budget_seconds: float | None = None,
    seeds=(0,),
    device: str = "cpu",
) -> tuple[list[Cell], dict[str, str]]:
    r"""The grid: one :class:`~ppgen.app.grid.Cell` per (model, seed), and the models left out with why.

    Quick mode takes each model's ``quick_preset(data.name)`` (config and fit options); a model
    without one is left out ("no quick preset"). The budget is ``budget_seconds``, else the preset's
    ``budget_seconds``, else ``QUICK_MAX_SECONDS``. Otherwise each model gets its default config and
    its ``fit_defaults`` (epochs decide; ``budget_seconds`` caps them when given).
    """
    cells, left_out = [], {}
    image = data.spec.is_image
    for name in names:
        cls = get(name)
        if quick:
            preset = cls.quick_preset(data.name)
            if preset is None:
                left_out[name] = "no quick preset"
                continue
            config, fit = preset["config"], preset["fit"]
            budget = budget_seconds or fit.pop("budget_seconds", None) or QUICK_MAX_SECONDS
            fit.pop("budget_seconds", None)
            protocol = {"num_samples": QUICK_NUM_SAMPLES, "n_sweep": 100 if image else 1000}
        else:
            config, fit, budget = {}, dict(cls.fit_defaults), budget_seconds
            protocol = {"num_samples": 1000, "n_sweep": 500 if image else 2500}
        for seed in seeds:
            cells.append(Cell(name, dict(config), dict(fit), budget, seed, "quick" if quick else "default",
                              device=str(device), **protocol))  # fmt: skip
    return cells, left_out


def compare(
    train: Dataset,
    test: Dataset,
    names: list[str],
    out: Path,
    budget_seconds: float | None = None,
    quick: bool = False,
    seeds=(0,),
    device="cpu",
    jobs: int = 1,
    use_cache: bool = True,
    cache_root=None,
    progress: bool = True,
    log=print,
) -> list[dict]:
    r"""Trains (or finds cached), scores and reports every model on ``train``/``test``.

    Arguments:
        train, test: the splits every model sees (a validation split of train is held out for the
            quality curves).
        names: registry names (each must support the data).
        budget_seconds: training seconds per model, evaluation excluded (see :func:`plan`).
        quick: quick presets instead of default configs.
        seeds: one run per seed; the report gives mean ± sd.
        jobs: parallel processes (one torch thread each).
        use_cache: reuse finished runs from the cache (``$PPGEN_CACHE`` or the user cache directory).

    Returns:
        One row per (model, seed) with its metrics and ``diagnostics``; a failed one has an ``error``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cells, left_out = plan(names, train, quick, budget_seconds, seeds, device)
    for name, why in left_out.items():
        log(f"  {name:<16} left out: {why}")
    results = run_grid(cells, train, test, jobs, use_cache, cache_root, progress)
    rows = add_flags([row for row, _ in results])
    for row in rows:
        log("  " + _one_line(row))
    samples = {}
    for row, x in results:
        if x is not None and row["model"] not in samples:
            samples[row["model"]] = x
    wall = time.perf_counter() - start
    write_report(out, train, test, rows, samples, left_out, quick=quick, jobs=jobs, wall=wall,
                 cache=str(cache_root or cache_dir()) if use_cache else None)  # fmt: skip
    return rows


def _one_line(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<16} seed {row.get('seed')}: FAILED: {row['error']}"
    nll = row.get("test_nll_nats", row.get("test_cond_nll_nats"))
    text = f"{nll:8.3f} nats ({row['test_nll_kind']})" if nll is not None else "no density"
    flags = ", ".join(row.get("diagnostics", [])) or "ok"
    return (f"{row['model']:<16} seed {row['seed']}: {text}; {row['epochs']} epochs in {row['train_seconds']:.1f}"
            f" s{' (cached)' if row.get('cached') else ''}; {flags}")  # fmt: skip


# --- the report ----------------------------------------------------------------------------------------------
def _best(rows: list[dict], key: str, higher: bool = False) -> dict | None:
    ok = [r for r in rows if r.get(key) is not None and "error" not in r]
    return (max if higher else min)(ok, key=lambda r: r[key]) if ok else None


def what_table_shows(summary: list[dict], data: Dataset) -> list[str]:
    r"""Sentences about the table, generated from its numbers: the best model per metric and per density kind."""
    says = []
    best = _best(summary, "test_nll_nats")
    if best:
        says.append(f"Lowest test NLL: **{best['model']}** at {best['test_nll_nats']:.3f} nats "
                    f"({best['test_nll_kind']}).")  # fmt: skip
    for kind in ("exact", "lower-bound", "unnormalized"):
        b = _best([r for r in summary if r.get("density") == kind], "test_nll_nats")
        if b and b is not best:
            says.append(
                f"Best {kind} model: **{b['model']}** ({b['test_nll_nats']:.3f} nats, {b['test_nll_kind']})."
            )
    base = next(
        (r for r in summary if r["model"] == "independent" and r.get("test_nll_nats") is not None), None
    )
    if base:
        worse = [r["model"] for r in summary if r.get("test_nll_nats") is not None and r is not base
                 and r["test_nll_nats"] > base["test_nll_nats"]]  # fmt: skip
        says.append(f"Worse than the `independent` baseline ({base['test_nll_nats']:.3f} nats): "
                    + (", ".join(worse) if worse else "no model") + ".")  # fmt: skip
    cond = _best(summary, "test_cond_nll_nats")
    if cond:
        says.append(f"Conditional models are scored by −log p(x | y), a different quantity, in their own column "
                    f"(best: {cond['model']}, {cond['test_cond_nll_nats']:.3f} nats).")  # fmt: skip
    hq = _best(summary, "hq_fraction", higher=True)
    if hq:
        full = [
            r["model"] for r in summary if r.get("modes_total") and r.get("modes_covered") == r["modes_total"]
        ]
        says.append(f"Most high-quality samples: **{hq['model']}** ({hq['hq_fraction']:.1%}); all "
                    f"{hq['modes_total']} modes covered by: {', '.join(full) or 'no model'}.")  # fmt: skip
    for density in ("implicit",):
        b = _best([r for r in summary if r.get("density") == density], "hq_fraction", higher=True)
        if b and b is not hq:
            says.append(f"Best implicit model by HQ: **{b['model']}** ({b['hq_fraction']:.1%}).")
    fd = _best(summary, "fd_digits")
    if fd:
        says.append(f"Lowest FD-digits: **{fd['model']}** ({fd['fd_digits']:.2f}).")
        b = _best([r for r in summary if r.get("density") == "implicit"], "fd_digits")
        if b and b is not fd:
            says.append(f"Best implicit model by FD-digits: **{b['model']}** ({b['fd_digits']:.2f}).")
    fast = _best(summary, "sample_seconds_per_1000")
    slow = _best(summary, "sample_seconds_per_1000", higher=True)
    if fast and slow and fast is not slow:
        says.append(f"Sampling ranges from {fast['sample_seconds_per_1000']:.3g} s per 1000 ({fast['model']}) "
                    f"to {slow['sample_seconds_per_1000']:.3g} s ({slow['model']}, {slow.get('sampler')}).")  # fmt: skip
    flagged = [f"{r['model']} ({', '.join(r['diagnostics'])})" for r in summary if r.get("diagnostics")]
    says.append("Flagged: " + ("; ".join(flagged) if flagged else "none") + ".")
    return says


def what_curves_show(rows: list[dict]) -> str:
    parts = []
    for r in rows:
        pts = [p for p in (r.get("curve") or {}).get("points", []) if p["value"] is not None]
        if len(pts) >= 2 and r.get("seed") == rows[0].get("seed"):
            label = r["curve"]["label"]
            parts.append(f"{r['model']} {label} {pts[0]['value']:.3g} → {pts[-1]['value']:.3g} "
                         f"({pts[0]['train_seconds']:.2g}–{pts[-1]['train_seconds']:.2g} s)")  # fmt: skip
    if not parts:
        return "No model was scored more than once during training."
    return "From the first to the last point: " + "; ".join(parts) + "."


def what_costs_show(rows: list[dict]) -> str:
    parts = []
    for r in rows:
        sweep = [s for s in r.get("sweep", []) if s["quality"] is not None]
        if len(sweep) >= 2 and r.get("seed") == rows[0].get("seed"):
            a, b = sweep[0], sweep[-1]
            parts.append(f"{r['model']}: {a['sampler']} {a['seconds_per_1000']:.3g} s/1000 for "
                         f"{a['quality_key']} {a['quality']:.3g}, {b['sampler']} {b['seconds_per_1000']:.3g} s/1000 "
                         f"for {b['quality']:.3g}")  # fmt: skip
    if not parts:
        return "No model offers more than one sampler here."
    return "Cheapest against most faithful sampler: " + "; ".join(parts) + "."


def write_report(out: Path, data: Dataset, test: Dataset, rows: list[dict], samples: dict, left_out: dict,
                 quick: bool, jobs: int, wall: float, cache: str | None) -> None:  # fmt: skip
    r"""The figures, then ``report.md``, ``report.html`` and ``report.json``."""
    summary = summarize(rows)
    first = {r["model"]: r for r in summary}
    figures = {}
    if samples:
        fig = sample_panels(samples, first, data, test)
        fig.savefig(out / "samples.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        for name, x in samples.items():
            fig = sample_figure(x, data, title=f"{name} ({first[name].get('sampler')})")
            fig.savefig(out / f"samples_{name}.png", dpi=90, bbox_inches="tight")
            plt.close(fig)
        figures["samples.png"] = "samples"
    for file, fig in (("nll.png", nll_figure(summary, data.name)), ("quality_curve.png", curve_figure(rows)),
                      ("sampling_cost.png", cost_figure(rows))):  # fmt: skip
        fig.savefig(out / file, dpi=90, bbox_inches="tight")
        plt.close(fig)
    seeds = sorted({r.get("seed") for r in rows})
    ok = [r for r in rows if "error" not in r]
    n_valid = round(VALID_FRACTION * len(data))
    budgets = sorted({r.get("budget_seconds") for r in ok if r.get("budget_seconds")})
    blocks = [
        ("h1", f"ppgen compare: {data.name}"),
        (
            "p",
            f"Data `{data.name}` ({data.kind}, event shape {tuple(data.event_shape)}): every model trains on "
            f"{len(data) - n_valid} examples of the train split, {n_valid} further train examples are held out "
            f"as the validation split of the quality curves, and every test number is on the {len(test)} "
            f"examples of the test split. "
            + (
                "Quick mode: each model's quick preset (config and fit options on the model class). "
                if quick
                else "Each model's default config and `fit_defaults`. "
            )
            + (
                f"Training budget {', '.join(f'{b:g}' for b in budgets)} s per model (evaluation excluded). "
                if budgets
                else "Training length: the epochs of each model's fit options. "
            )
            + f"Seeds {', '.join(map(str, seeds))}"
            + (" (mean ± sd over seeds)" if len(seeds) > 1 else "")
            + f"; {jobs} parallel process{'es' if jobs > 1 else ''} of one torch thread each; "
            f"{sum(1 for r in ok if r.get('cached'))} of {len(rows)} runs reused from the cache"
            + (f" (`{cache}`)" if cache else " (cache off)")
            + f"; this report took {wall:.0f} s of wall time.",
        ),  # fmt: skip
        ("h2", "Results"),
        ("table", *table(summary)),
        ("p", "**What this shows.** " + " ".join(what_table_shows(summary, data))),
        (
            "p",
            f"How the numbers were obtained: test NLL on the whole test split, nats per example; {NLL_KINDS} "
            f"KL gap = test NLL − the true entropy"
            + (f" ({data.entropy:.4f} nats)" if data.entropy is not None else "")
            + ". HQ and modes: the VEEGAN/PacGAN protocol on 2,500 samples (high quality = within 3σ of the "
            "nearest mode). FD-digits: Fréchet distance in the features of the data set's classifier, 500 "
            "samples against the test split. `train s`: training wall seconds without the curve's "
            "evaluations; `eval s`: the test evaluation; `epochs`/`steps`: what training did; `sampler`: "
            "what the samples and sample s/1000 come from (wall seconds per 1000 samples, one thread, batched, "
            "after a warm-up). −log p(x|y) is the conditional NLL of conditional models, never ranked with the "
            "unconditional column.",
        ),  # fmt: skip
        (
            "p",
            "Diagnostics: `under-trained` (the budget ended training before its epochs, or the NLL is worse "
            "than `independent`'s), `mode-dropping` (fewer modes covered than the data have), "
            "`posterior-collapse` (fewer than half the latent units active: Cov_x E_q[z_u] > 0.01 on 500 test "
            "points), `non-finite-stop` (a NaN/inf loss stopped training; the last finite model was scored), "
            f"`samples-off-support` (more than {OFF_SUPPORT_LIMIT:.0%} of the samples outside the plotted "
            f"region). Flags used: {', '.join(f for f in FLAGS)}.",
        ),  # fmt: skip
    ]
    notes = [f"**{n}**: left out ({why})" for n, why in left_out.items()]
    notes += [f"**{r['model']}** (seed {r.get('seed')}) failed: {r['error']}" for r in rows if "error" in r]
    if notes:
        blocks += [("ul", notes)]
    if samples:
        blocks += [("h2", "Samples"),
                   ("p", "Each panel: samples from the model's sampler (in the title). "
                         + ("2-D panels draw the data density behind the samples ("
                            + ("contours of the true density" if data.truth is not None else "a 2-D histogram of the test points")
                            + ") and say what fraction of samples fell outside the panel."
                            if tuple(data.event_shape) == (2,) else "")),
                   ("img", "samples.png", "samples")]  # fmt: skip
    blocks += [
        ("h2", "Test NLL"),
        (
            "p",
            "Unconditional models only; the dashed line is the `independent` baseline; the axis is clipped "
            "(an arrow marks a bar past the edge, its value written beside it). Blue: exact; orange: a bound "
            "or an estimate.",
        ),  # fmt: skip
        ("img", "nll.png", "test NLL"),
        ("h2", "Quality per second of training"),
        (
            "p",
            f"Each point scores the model on the validation split ({n_valid} train examples never trained on) "
            "at log-spaced moments of training time; the time spent scoring is left out of the training "
            "seconds and of the budget. Density models: validation NLL (exact; IWAE with K = 10 for VAEs; the "
            "ELBO for ddpm; quadrature for the 2-D ebm; the legend says which). Others: the high-quality "
            "fraction of 500 samples on mixtures, FD-digits of 500 samples on images, else the MMD. "
            + what_curves_show(rows),
        ),  # fmt: skip
        ("img", "quality_curve.png", "quality per second of training"),
        ("h2", "Sampling cost against sample quality"),
        (
            "p",
            "Each model's samplers: ddpm by DDIM with S steps and ancestrally with all T; smld and ebm with "
            "Langevin chains of several lengths; the pixel models cached and naive (full recompute). Seconds "
            "per 1000 samples (wall, one thread, batched, after a warm-up; CPU seconds in report.json) against "
            "the HQ fraction (2-D mixtures), FD-digits (images) or MMD, from "
            + ", ".join(sorted({f"{s['n']} samples" for r in ok for s in r.get("sweep", [])}))
            + ". "
            + what_costs_show(rows),
        ),  # fmt: skip
        ("img", "sampling_cost.png", "sampling cost against sample quality"),
    ]
    payload = {
        "data": data.name,
        "kind": data.kind,
        "quick": quick,
        "seeds": seeds,
        "jobs": jobs,
        "wall_seconds": wall,
        "train_examples": len(data) - n_valid,
        "valid_examples": n_valid,
        "test_examples": len(test),
        "left_out": left_out,
        "summary": summary,
        "rows": rows,
    }
    write_documents(out, blocks, payload, f"ppgen compare: {data.name}")
