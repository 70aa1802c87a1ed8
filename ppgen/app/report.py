"""The report of ``ppgen compare``: one document, written as Markdown, JSON and a self-contained HTML page.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered
twice; the HTML embeds its figures as base64 data URIs, so it needs no other file and no network.
Rows of several seeds are summarized per model as mean ± sd.
"""

import base64
import html
import math
import statistics
from pathlib import Path

from ppgen.app.runs import atomic_write, write_json

__all__ = ["COLUMNS", "summarize", "format_table", "render_markdown", "render_html", "write_documents"]

# key, header, format; a column shows when some row has the key
COLUMNS = [
    ("model", "model", "{}"),
    ("family", "family", "{}"),
    ("density", "density", "{}"),
    ("preset", "preset", "{}"),
    ("n_params", "params", "{:,.0f}"),
    ("epochs", "epochs", "{:.0f}"),
    ("steps", "steps", "{:.0f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("eval_seconds", "eval s", "{:.1f}"),
    ("test_nll_nats", "test NLL (nats)", "{:.3f}"),
    ("test_nll_kind", "NLL kind", "{}"),
    ("test_bpd", "bits/dim", "{:.4f}"),
    ("test_kl_gap_nats", "KL gap (nats)", "{:.3f}"),
    ("test_cond_nll_nats", "−log p(x|y) (nats)", "{:.3f}"),
    ("modes_covered", "modes", "{:.1f}"),
    ("hq_fraction", "HQ", "{:.1%}"),
    ("fd_digits", "FD-digits", "{:.2f}"),
    ("sampler", "sampler", "{}"),
    ("sample_seconds_per_1000", "sample s/1000", "{:.3f}"),
    ("diagnostics", "diagnostics", "{}"),
]
NUMERIC = {k for k, _, f in COLUMNS if f != "{}"} | {"active_units", "off_support_fraction", "curve_seconds"}


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
    for name, group in by_model.items():
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
        text += " ± " + fmt.format(sd).rstrip("%") + ("%" if fmt.endswith("%}") else "")
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


# --- blocks: ("h1"|"h2"|"p", text) | ("table", header, body) | ("img", file, alt) | ("ul", items)
def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] in ("h1", "h2"):
            out += [("# " if b[0] == "h1" else "## ") + b[1], ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "ul":
            out += [f"- {item}" for item in b[1]] + [""]
        elif b[0] == "table":
            out += ["| " + " | ".join(b[1]) + " |", "|" + "|".join("---" for _ in b[1]) + "|"]
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
        if b[0] in ("h1", "h2"):
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
