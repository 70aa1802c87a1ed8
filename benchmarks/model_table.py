"""The README's model table: `ppgen compare` without --quick (each model's default config and
fit_defaults, in parallel, cached), printed as the README's Markdown rows.

    python benchmarks/model_table.py --data digits [--models a,b] [--jobs N] [--out runs/table]

It is the same code path as `ppgen compare --data DATA --out DIR`; the full report (report.md/html,
figures, diagnostics) is written to --out.
"""

import argparse

import ppgen
from ppgen.app.compare import applicable_models, compare, default_jobs
from ppgen.app.report import summarize
from ppgen.app.threads import add_threads_argument


def cell(row: dict) -> str:
    if "error" in row:
        return f"failed: {row['error']}"
    parts = []
    if row.get("test_nll_nats") is not None:
        parts.append(f"{row['test_nll_nats']:.2f} nats ({row['test_nll_kind']})")
    if row.get("test_cond_nll_nats") is not None:
        parts.append(f"−log p(x|y) {row['test_cond_nll_nats']:.2f} nats ({row['test_nll_kind']})")
    if row.get("test_kl_gap_nats") is not None:
        parts.append(f"KL gap {row['test_kl_gap_nats']:.3f}")
    if row.get("modes_covered") is not None:
        parts.append(f"{row['modes_covered']:.0f}/{row['modes_total']} modes, {row['hq_fraction']:.0%} HQ")
    if row.get("fd_digits") is not None:
        parts.append(f"FD-digits {row['fd_digits']:.1f}")
    parts.append(f"{row['epochs']:.0f} epochs, {row['train_seconds']:.0f} s")
    if row.get("diagnostics"):
        parts.append(", ".join(row["diagnostics"]))
    return ", ".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--models", default=None)
    p.add_argument("--jobs", type=int, default=default_jobs())
    p.add_argument("--out", default="runs/table")
    add_threads_argument(p)
    args = p.parse_args()
    train, test = ppgen.data.load(args.data, "train"), ppgen.data.load(args.data, "test")
    names = applicable_models(train, args.models.split(",") if args.models else None)
    rows = compare(train, test, names, f"{args.out}/{args.data}", jobs=args.jobs, threads=args.threads)
    rows = summarize(rows)
    print(f"| model | family | density | {args.data}: test quality (default config, CPU) |")
    print("|---|---|---|---|")
    for row in rows:
        cls = ppgen.get(row["model"])
        print(f"| `{row['model']}` | {cls.family} | {cls.density} | {cell(row)} |")


if __name__ == "__main__":
    main()
