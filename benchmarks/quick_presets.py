"""Tunes and measures the models' quick presets (``GenerativeModel.quick_presets``), the demo's settings.

Each model is created with its preset's config, fit with its preset's fit options (``progress=False``,
one thread) and scored as ``ppgen compare --quick`` scores it: IWAE with K = 100 for lower-bound
models, 2,500 samples for mode coverage on 2-D data, FD-digits on 200 samples of an image model. CPU
seconds (``time.process_time``) are reported beside wall seconds: the machine this ran on was shared.

By default the models are fit on 85 % of the train split and scored on the held-out 15 %
(``train.holdout(0.15, seed=0)``): the presets were tuned on that validation split only. ``--split
test`` fits on the whole train split and scores on the test split: the final measurement, made once.

Usage:
    python benchmarks/quick_presets.py --data digits [--models nade,vae] [--split test]
    python benchmarks/quick_presets.py --data rings8 --models nsf --fit '{"epochs": 30}'
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


import ppgen  # noqa: E402
from ppgen.app.demo import DEMO_MODELS  # noqa: E402
from ppgen.app.threads import add_threads_argument, set_threads  # noqa: E402

IMAGE_SAMPLES = 200  # as ppgen compare --quick
NUM_SAMPLES = 100  # K of the IWAE estimate, as ppgen compare --quick


def measure(name: str, data: str, split: str, config: dict | None, fit: dict | None, seed: int) -> dict:
    r"""Fits one model by its preset (or the given overrides) and scores it; one row of the table."""
    train = ppgen.data.load(data, "train")
    if split == "test":
        fit_part, score_part = train, ppgen.data.load(data, "test")
    else:
        fit_part, score_part = train.holdout(0.15, seed=0)
    preset = ppgen.get(name).quick_preset(data) or {"config": {}, "fit": {}}
    config = {**preset["config"], **(config or {})}
    fit_options = {**preset["fit"], **(fit or {})}
    ppgen.seed_everything(seed)
    model = ppgen.create(name, fit_part, **config)
    c0, w0 = time.process_time(), time.perf_counter()
    result = ppgen.fit(model, fit_part, progress=False, **fit_options)
    c1, w1 = time.process_time(), time.perf_counter()
    metrics = ppgen.evaluate(model, score_part, num_samples=NUM_SAMPLES, n_image_samples=IMAGE_SAMPLES)
    c2, w2 = time.process_time(), time.perf_counter()
    return {
        "model": name,
        "density": model.density,
        "epochs": result.epochs,
        "steps": result.steps,
        "fit_cpu_s": c1 - c0,
        "fit_wall_s": w1 - w0,
        "eval_cpu_s": c2 - c1,
        "eval_wall_s": w2 - w1,
        "nll": metrics.get("test_nll_nats"),
        "kl_gap": metrics.get("test_kl_gap_nats"),
        "modes": metrics.get("modes_covered"),
        "hq": metrics.get("hq_fraction"),
        "fd": metrics.get("fd_digits"),
        "config": config,
        "fit": fit_options,
    }


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--models", default=None, help="comma-separated; default: the data set's DEMO_MODELS")
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--config", default=None, help="JSON model kwargs overriding the preset's")
    parser.add_argument("--fit", default=None, help="JSON fit options overriding the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    add_threads_argument(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    names = args.models.split(",") if args.models else DEMO_MODELS.get(args.data, [])
    config = json.loads(args.config) if args.config else None
    fit = json.loads(args.fit) if args.fit else None
    print(f"{args.data}, scored on the {args.split} split, seed {args.seed}, 1 thread")
    print(
        f"{'model':16s} {'ep':>4s} {'steps':>6s} {'fit cpu':>8s} {'fit wall':>8s} {'eval cpu':>8s} "
        f"{'nll':>7s} {'kl gap':>7s} {'modes':>5s} {'hq':>6s} {'fd':>7s}"
    )
    for name in names:
        row = measure(name, args.data, args.split, config, fit, args.seed)
        print(
            f"{name:16s} {row['epochs']:4d} {row['steps']:6d} {row['fit_cpu_s']:8.1f} "
            f"{row['fit_wall_s']:8.1f} {row['eval_cpu_s']:8.1f} {_fmt(row['nll'], '7.2f')} "
            f"{_fmt(row['kl_gap'], '7.3f')} "
            f"{_fmt(row['modes'], '5d')} {_fmt(row['hq'], '6.3f')} {_fmt(row['fd'], '7.1f')}",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({"data": args.data, "split": args.split, "seed": args.seed, **row}) + "\n")


if __name__ == "__main__":
    main()
