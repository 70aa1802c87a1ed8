"""The README's model table: every model trained by its default config through `ppgen train`.

Each (model, data) pair is a real run directory under --out (config, checkpoint, metrics); the table
is read back from their metrics.json files, so every number in it was measured by the same code
path users run. Independent runs go in parallel, one per --jobs.

    python benchmarks/model_table.py --data digits [--models a,b] [--jobs 2] [--out runs/table]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ppgen
from ppgen.app.compare import applicable_models

FIELDS = (
    "test_nll_nats",
    "test_nll_kind",
    "test_bpd",
    "test_kl_gap_nats",
    "modes_covered",
    "hq_fraction",
    "fd_digits",
    "train_seconds",
)


def train(name: str, data: str, out: Path, extra: list[str]) -> dict:
    run = out / f"{data}-{name}"
    cmd = [
        sys.executable,
        "-m",
        "ppgen",
        "train",
        name,
        "--data",
        data,
        "--out",
        str(run),
        "--force",
        "--quiet",
        "--device",
        "cpu",
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        return {
            "model": name,
            "data": data,
            "error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}",
        }
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(metrics.pop("timings", {}))  # train_seconds and the other timings live under "timings"
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


def cell(row: dict) -> str:
    if "error" in row:
        return f"failed: {row['error']}"
    parts = []
    if row.get("test_nll_nats") is not None:
        parts.append(f"{row['test_nll_nats']:.2f} nats ({row['test_nll_kind']})")
    if row.get("test_kl_gap_nats") is not None:
        parts.append(f"KL gap {row['test_kl_gap_nats']:.3f}")
    if row.get("modes_covered") is not None:
        parts.append(f"{row['modes_covered']}/{row['modes_total']} modes, {row['hq_fraction']:.0%} HQ")
    if row.get("fd_digits") is not None:
        parts.append(f"FD-digits {row['fd_digits']:.1f}")
    parts.append(f"{row['train_seconds']:.0f} s")
    return ", ".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--models", default=None)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/table")
    p.add_argument("extra", nargs="*", help="more `ppgen train` options, after --")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = applicable_models(
        ppgen.data.load(args.data, "train"), args.models.split(",") if args.models else None
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda n: train(n, args.data, out, args.extra), names))
    (out / f"{args.data}.json").write_text(json.dumps(rows, indent=2))
    print(f"| model | family | density | {args.data}: test quality (default config, CPU) |")
    print("|---|---|---|---|")
    for name, row in zip(names, rows):
        cls = ppgen.get(name)
        print(f"| `{name}` | {cls.family} | {cls.density} | {cell(row)} |")


if __name__ == "__main__":
    main()
