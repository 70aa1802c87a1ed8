"""The report of ``ppgen compare``: one document, written as Markdown, JSON and a self-contained HTML page.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered
twice; the HTML embeds its figures as base64 data URIs, so it needs no other file and no network.
Rows of several seeds are summarized per model as mean ± sd.
"""

import base64
import html
import math
import re
import statistics
from pathlib import Path

import matplotlib.pyplot as plt

from ppgen.app.diagnostics import FLAGS, OFF_SUPPORT_LIMIT
from ppgen.app.findings import what_costs_show, what_curves_show, what_table_shows
from ppgen.app.grid import VALID_FRACTION
from ppgen.app.plots.compare import cost_figure, curve_figure, nll_figure, sample_panels
from ppgen.app.plots.core import sample_figure
from ppgen.app.runs import atomic_write, write_json
from ppgen.data import Dataset

__all__ = [
    "COLUMNS",
    "summarize",
    "format_table",
    "render_markdown",
    "render_html",
    "write_documents",
    "write_report",
]

# key, header, format; a column shows when some row has the key
COLUMNS = [
    ("model", "model", "{}"),
    ("family", "family", "{}"),
    ("density", "density", "{}"),
    ("preset", "preset", "{}"),
    ("defaults", "defaults", "{}"),
    ("n_params", "params", "{:,.0f}"),
    ("epochs", "epochs", "{:g}"),
    ("steps", "steps", "{:g}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("eval_seconds", "eval s", "{:.1f}"),
    ("test_nll_nats", "test NLL (nats)", "{:.3f}"),
    ("test_nll_kind", "NLL kind", "{}"),
    ("test_bpd", "bits/dim", "{:.4f}"),
    ("test_kl_gap_nats", "KL gap (nats)", "{:.3f}"),
    ("test_cond_nll_nats", "−log p(x|y) (nats)", "{:.3f}"),
    ("modes_covered", "modes", "{:g}"),
    ("hq_fraction", "HQ", "{:.1%}"),
    ("fd_digits", "FD-digits", "{:.2f}"),
    ("sampler", "sampler", "{}"),
    ("sample_seconds_per_1000", "sample s/1000", "{:.3f}"),
    ("diagnostics", "diagnostics", "{}"),
]
NLL_KINDS = (
    "`exact` is log p(x); `iwae-K` an importance-sampled estimate with K samples (a stochastic lower bound "
    "on "
    "log p(x), so the NLL is an upper bound); `elbo` the variational bound; `dequantized` the dequantized "
    "bound on the discrete likelihood; `quadrature` an unnormalized model normalized numerically on a grid. "
    "Implicit models have no density."
)
NUMERIC = {k for k, _, f in COLUMNS if f != "{}"} - {"n_params"} | {
    "active_units",
    "off_support_fraction",
    "curve_seconds",
}


def _mean_sd(values: list) -> tuple[float, float | None]:
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(rows: list[dict]) -> list[dict]:
    r"""One row per model: the first seed's row with every numeric metric replaced by its mean over the
    seeds (``<key>_sd`` holds the standard deviation), flags united, ``seeds`` listing the seeds."""
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    out = []
    for group in by_model.values():
        ok = [r for r in group if "error" not in r]
        if not ok:
            out.append({**group[0], "seeds": [r.get("seed") for r in group]})
            continue
        s = {**ok[0], "seeds": [r.get("seed") for r in ok]}
        for key in NUMERIC:
            vals = [r.get(key) for r in ok]
            if all(isinstance(v, (int, float)) and v is not None and math.isfinite(v) for v in vals) and vals:
                s[key], s[f"{key}_sd"] = _mean_sd(vals)
        flags = [f for r in ok for f in r.get("diagnostics", [])]
        s["diagnostics"] = list(dict.fromkeys(flags))
        if len(ok) < len(group):
            s["failed_seeds"] = [r.get("seed") for r in group if "error" in r]
        out.append(s)
    return out


def cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if key == "diagnostics":
        return ", ".join(value) if value else ("–" if "error" in row else "ok")
    if value is None or isinstance(value, float) and math.isnan(value):
        return "failed" if key == "test_nll_nats" and "error" in row else "–"
    text = fmt.format(value)
    sd = row.get(f"{key}_sd")
    if sd is not None:
        text += " ± " + (f"{sd:.2g}" if fmt == "{:g}" else fmt.format(sd))
    return text


def _columns(rows: list[dict]) -> list[tuple]:
    return [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    r"""(header, cells) of the summary table."""
    cols = _columns(rows)
    return [c[1] for c in cols], [[cell(r, k, f) for k, _, f in cols] for r in rows]


def format_table(rows: list[dict]) -> str:
    r"""The summary table as plain text, for the terminal."""
    header, body = table(rows)
    grid = [header] + body
    widths = [max(len(row[i]) for row in grid) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in grid)


def markdown_blocks(text: str) -> list[tuple]:
    r"""Report blocks from simple markdown: ``#``/``##``/``###`` headings, ``|`` tables (header, rule,
    rows), ``![alt](file)`` figures, ``- `` lists, and paragraphs separated by blank lines."""
    blocks, paragraph, items, table = [], [], [], []

    def flush():
        if paragraph:
            blocks.append(("p", " ".join(paragraph)))
        if items:
            blocks.append(("ul", list(items)))
        if table:
            cells = [
                [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row.strip()[1:-1])]
                for row in table
            ]
            blocks.append(("table", cells[0], [r for r in cells[1:] if not set("".join(r)) <= set("-: ")]))
        paragraph.clear(), items.clear(), table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if heading := re.match(r"^(#{1,3}) (.*)", stripped):
            flush()
            blocks.append(("h2" if len(heading.group(1)) <= 2 else "h3", heading.group(2)))
        elif image := re.match(r"^!\[(.*?)\]\((.*?)\)$", stripped):
            flush()
            blocks.append(("img", Path(image.group(2)).name, image.group(1)))
        elif stripped.startswith("|"):
            table.append(stripped)
        elif stripped.startswith("- "):
            items.append(stripped[2:])
        elif stripped:
            if table or items:
                flush()
            paragraph.append(stripped)
        else:
            flush()
    flush()
    return blocks


# --- blocks: ("h1"|"h2"|"h3"|"p", text) | ("table", header, body) | ("img", file, alt) | ("ul", items)
def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            out += [{"h1": "# ", "h2": "## ", "h3": "### "}[b[0]] + b[1], ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "ul":
            out += [f"- {item}" for item in b[1]] + [""]
        elif b[0] == "table":
            out += ["| " + " | ".join(h.replace("|", "\\|") for h in b[1]) + " |"]
            out += ["|" + "|".join("---" for _ in b[1]) + "|"]
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b[2]] + [""]
        elif b[0] == "img":
            out += [f"![{b[2]}]({b[1]})", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    r"""HTML of a line of the report's Markdown subset: `code` and **bold**."""
    parts = html.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;line-height:1.45;color:#222}table{border-collapse:collapse;font-size:13px;
display:block;overflow-x:auto}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
code{background:#f5f5f5;padding:0 3px}"""


def render_html(blocks: list[tuple], folder: Path, title: str) -> str:
    r"""One self-contained page: the figures in ``folder`` are embedded as base64 PNG data URIs."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           f"<style>{STYLE}</style></head><body>"]  # fmt: skip
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            out.append(f"<{b[0]}>{_inline(b[1])}</{b[0]}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b[2]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode((Path(folder) / b[1]).read_bytes()).decode()
            alt = html.escape(b[2], quote=True)
            out.append(f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>')
    out.append("</body></html>")
    return "\n".join(out)


def write_documents(out: Path, blocks: list[tuple], payload: dict, title: str) -> None:
    r"""``report.md``, ``report.html`` (self-contained) and ``report.json``, each written atomically."""
    atomic_write(out / "report.md", render_markdown(blocks).encode())
    atomic_write(out / "report.html", render_html(blocks, out, title).encode())
    write_json(out / "report.json", payload)


def write_report(out: Path, data: Dataset, test: Dataset, rows: list[dict], samples: dict, left_out: dict,
                 quick: bool, jobs: int, wall: float, cache: str | None,
                 extra: list | None = None, threads: int = 1) -> None:  # fmt: skip
    r"""The figures, then ``report.md``, ``report.html`` and ``report.json``; ``extra`` blocks (e.g. the
    uses-of-a-density sections) go at the end; ``threads`` is the torch thread count of each process
    (0: torch's default)."""
    per_process = f"{threads} torch thread{'s' * (threads > 1)}" if threads else "torch's default threads"
    summary = summarize(rows)
    first = {r["model"]: r for r in summary}
    figures = {}
    if samples:
        fig = sample_panels(samples, first, data, test)
        fig.savefig(out / "samples.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        for name, x in samples.items():
            fig = sample_figure(x, data, title=f"{name} ({first[name].get('sampler')})")
            stem = re.sub(r"[^\w.-]+", "_", name.rpartition(":")[2] or name)  # file.py:NAME -> NAME
            fig.savefig(out / f"samples_{stem}.png", dpi=90, bbox_inches="tight")
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
            f"{len(data) - n_valid} examples of the train split, {n_valid} further train examples are held "
            "out "
            f"as the validation split of the quality curves, and every test number is on the {len(test)} "
            f"examples of the test split. "
            + (
                "Quick mode: each model's quick preset (config and fit options on the model class). "
                if quick
                else "Each model's default config and `fit_defaults`, those of the data's regime where "
                "the model has them (column `defaults`; – for the class defaults). "
            )
            + (
                f"Training budget {', '.join(f'{b:g}' for b in budgets)} s per model (evaluation excluded). "
                if budgets
                else "Training length: the epochs of each model's fit options. "
            )
            + f"Seeds {', '.join(map(str, seeds))}"
            + (" (mean ± sd over seeds)" if len(seeds) > 1 else "")
            + f"; {jobs} parallel process{'es' if jobs > 1 else ''} of {per_process} each; "
            f"{sum(1 for r in ok if r.get('cached'))} of {len(rows)} runs reused from the cache"
            + (f" (`{cache}`)" if cache else " (cache off)")
            + f"; the grid took {wall:.0f} s of wall time (figures and imports aside).",
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
            f"what the samples and sample s/1000 come from (wall seconds per 1000 samples, {per_process}, "
            "batched, after a warm-up). −log p(x|y) is the conditional NLL of conditional models, never "
            "ranked with the unconditional column.",
        ),  # fmt: skip
        (
            "p",
            "Diagnostics: `under-trained` (the budget ended training before its epochs, or the NLL is worse "
            "than `independent`'s), `mode-dropping` (fewer modes covered than the data have), "
            "`posterior-collapse` (fewer than half the latent units active: Cov_x E_q[z_u] > 0.01 on 500 "
            "test "
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
                            + ("contours of the true density" if data.truth is not None
                               else "a 2-D histogram of the test points")
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
            f"Each point scores the model on the validation split ({n_valid} train examples never "
            "trained on) "
            "at log-spaced moments of training time; the time spent scoring is left out of the training "
            "seconds and of the budget. Density models: validation NLL (exact; IWAE with K = 10 for VAEs; "
            "the "
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
            f"per 1000 samples (wall, {per_process}, batched, after a warm-up; CPU seconds in report.json) "
            "against "
            "the HQ fraction (2-D mixtures), FD-digits (images) or MMD, from "
            + ", ".join(sorted({f"{s['n']} samples" for r in ok for s in r.get("sweep", [])}))
            + ". "
            + what_costs_show(rows),
        ),  # fmt: skip
        ("img", "sampling_cost.png", "sampling cost against sample quality"),
    ]
    blocks += extra or []
    payload = {
        "data": data.name,
        "kind": data.kind,
        "quick": quick,
        "seeds": seeds,
        "jobs": jobs,
        "threads": threads,
        "wall_seconds": wall,
        "train_examples": len(data) - n_valid,
        "valid_examples": n_valid,
        "test_examples": len(test),
        "left_out": left_out,
        "summary": summary,
        "rows": rows,
    }
    write_documents(out, blocks, payload, f"ppgen compare: {data.name}")
