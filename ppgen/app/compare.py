"""The comparison harness: every requested model on the same split with the same budget.

Writes ``report.md``, ``report.json``, one sample figure per model, a panel of all samples and a
bar chart of test NLL.
"""

import math
import traceback
from pathlib import Path

import matplotlib.pyplot as plt

from ppgen.app.job import run_job
from ppgen.app.plots.core import draw_samples, nll_bars
from ppgen.app.runs import write_json
from ppgen.app.specs import lookup
from ppgen.base import model_names, supports
from ppgen.data import Dataset

__all__ = ["compare", "applicable_models", "write_report", "QUICK_BUDGET_SECONDS", "QUICK_NUM_SAMPLES"]

QUICK_BUDGET_SECONDS = 2.0
QUICK_NUM_SAMPLES = 100
QUICK_IMAGE_SAMPLES = 200
COLUMNS = [
    ("model", "model", "{}"),
    ("family", "family", "{}"),
    ("density", "density", "{}"),
    ("n_params", "params", "{:,}"),
    ("test_nll_nats", "test NLL (nats)", "{:.3f}"),
    ("test_bpd", "bits/dim", "{:.4f}"),
    ("test_nll_kind", "NLL kind", "{}"),
    ("test_kl_gap_nats", "KL gap (nats)", "{:.3f}"),
    ("modes_covered", "modes", "{}"),
    ("hq_fraction", "HQ", "{:.1%}"),
    ("fd_digits", "FD-digits", "{:.2f}"),
    ("precision", "precision", "{:.2f}"),
    ("recall", "recall", "{:.2f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("sample_seconds_per_1000", "sample s/1000", "{:.3f}"),
]


def applicable_models(data: Dataset, names: list[str] | None = None) -> list[str]:
    r"""The requested (default: all registered) models that can model this data."""
    names = names or model_names()
    return [n for n in names if supports(lookup(n), data.spec) is None]


def compare(
    train: Dataset,
    test: Dataset,
    names: list[str],
    out: Path,
    budget_seconds: float | None = None,
    quick: bool = False,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
    log=print,
) -> list[dict]:
    r"""Trains and scores each model, saves its samples, and writes the report into ``out``.

    Arguments:
        train, test: the splits every model sees.
        names: registry names (each must support the data).
        budget_seconds: the training time of each model (default: its default epochs; quick mode 4 s).
        quick: a 2-second budget, K = 100 importance samples and 200 samples for the image metrics,
            for demos and tests.

    Returns:
        One row of metrics per model; a model that failed has an "error" instead.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = QUICK_BUDGET_SECONDS if quick and budget_seconds is None else budget_seconds
    rows, samples = [], {}
    for name in names:
        fit_options = {"epochs": lookup(name).fit_defaults.get("epochs"), "budget_seconds": budget}
        try:
            eval_options = {"n_image_samples": QUICK_IMAGE_SAMPLES} if quick else {}
            job = run_job(
                name,
                train,
                test,
                fit_options=fit_options,
                seed=seed,
                device=device,
                num_samples=QUICK_NUM_SAMPLES if quick else 1000,
                eval_options=eval_options,
                progress=progress,
            )
            rows.append(job.metrics)
            samples[job.model.name] = job.model.sample(64).detach().cpu()  # a file spec: the model's name
            nll = job.metrics["test_nll_nats"]
            log(
                f"  {name:<16} "
                + (
                    f"test NLL {nll:8.3f} nats ({job.metrics['test_nll_kind']})"
                    if nll is not None
                    else "no density"
                )
                + f", trained {job.metrics['train_seconds']:.1f}s"
            )
        except Exception as e:  # one failing model must not hide the others' results
            rows.append(
                {
                    "model": name,
                    "family": lookup(name).family,
                    "density": lookup(name).density,
                    "error": f"{type(e).__name__}: {e}",
                }
            )
            log(f"  {name:<16} FAILED: {type(e).__name__}: {e}")
            traceback.print_exc()
    write_report(out, train, rows, samples, budget, quick)
    return rows


def _cell(value, fmt: str) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "–"
    return fmt.format(value)


def write_report(out: Path, data: Dataset, rows: list[dict], samples: dict, budget, quick: bool) -> None:
    r"""``report.md``, ``report.json``, ``samples_<model>.png``, ``samples.png`` and ``nll.png``."""
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = [
        f"# ppgen compare: {data.name}",
        "",
        f"{len(data)} training examples of kind `{data.kind}`, event shape {tuple(data.event_shape)}; "
        + (f"training budget {budget:g} s per model" if budget else "each model's default training length")
        + (
            f" (quick mode: K = {QUICK_NUM_SAMPLES} importance samples; image metrics on {QUICK_IMAGE_SAMPLES} samples)."
            if quick
            else "."
        ),
        "",
        "| " + " | ".join(c[1] for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(key), fmt) for key, _, fmt in columns) + " |")
    failed = [r for r in rows if "error" in r]
    lines += [
        "",
        "NLL kinds: `exact` is log p(x); `iwae-K` an importance-sampled estimate (a stochastic lower bound on log p(x), so the NLL is an upper bound); `elbo` the variational bound; `dequantized` the dequantized bound on the discrete likelihood; `quadrature` an unnormalized model normalized numerically. Implicit models have no density.",
    ]
    if data.entropy is not None:
        lines.append(
            f"The true entropy of `{data.name}` is {data.entropy:.4f} nats; the KL gap is test NLL − entropy."
        )
    lines += [f"- **{r['model']}** failed: {r['error']}" for r in failed]
    lines += ["", "![samples](samples.png)", "", "![test NLL](nll.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    write_json(
        out / "report.json",
        {"data": data.name, "kind": data.kind, "budget_seconds": budget, "quick": quick, "rows": rows},
    )

    cols = min(4, max(1, len(samples)))
    nrows = math.ceil(len(samples) / cols) if samples else 1
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, x) in zip(axes.flat, samples.items()):
        draw_samples(ax, x, data, title=name)
        single, sax = plt.subplots(figsize=(4, 4))
        draw_samples(sax, x, data, title=name)
        single.savefig(out / f"samples_{name}.png", dpi=100, bbox_inches="tight")
        plt.close(single)
    fig.savefig(out / "samples.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(1 + 0.7 * max(1, len(rows)), 3.5))
    nll_bars(ax, rows)
    ax.set_title(f"test NLL on {data.name} (blue: exact, orange: bound/estimate)", fontsize=9)
    fig.savefig(out / "nll.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def format_table(rows: list[dict]) -> str:
    r"""The report's table as plain text, for the terminal."""
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    table = [[c[1] for c in columns]] + [[_cell(r.get(k), f) for k, _, f in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in table)
