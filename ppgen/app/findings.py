"""The "what this shows" sentences of the compare report, generated from its numbers."""

from ppgen.data import Dataset

__all__ = ["what_table_shows", "what_curves_show", "what_costs_show"]


def _best(rows: list[dict], key: str, higher: bool = False) -> dict | None:
    ok = [r for r in rows if r.get(key) is not None and "error" not in r]
    return (max if higher else min)(ok, key=lambda r: r[key]) if ok else None


def what_table_shows(summary: list[dict], data: Dataset) -> list[str]:
    r"""Sentences about the table, from its numbers: the best model per metric and per density kind."""
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
        says.append(f"Conditional models are scored by −log p(x | y), a different quantity, in their own "
                    f"column "
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
        lo, hi = fast["sample_seconds_per_1000"], slow["sample_seconds_per_1000"]
        says.append(f"Sampling ranges from {lo:.3g} s per 1000 ({fast['model']}) to {hi:.3g} s "
                    f"({slow['model']}, {slow.get('sampler')}).")  # fmt: skip
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
                         f"{a['quality_key']} {a['quality']:.3g}, {b['sampler']} "
                         f"{b['seconds_per_1000']:.3g} s/1000 "
                         f"for {b['quality']:.3g}")  # fmt: skip
    if not parts:
        return "No model offers more than one sampler here."
    return "Cheapest against most faithful sampler: " + "; ".join(parts) + "."
