"""Binarized MNIST: each model's test NLL (ppgen.create / fit / evaluate) beside the published one.

Training data are dynamically binarized (a fresh Bernoulli draw of the grey levels every epoch); the
test set is binarized once with a fixed seed (ppgen.data). Exact models report the exact test NLL;
VAE / IWAE report the importance-sampled estimate with K = --num-samples (the published numbers used
K = 5000, so a smaller K over-estimates their NLL slightly). Published numbers come from much longer
GPU training; on a CPU with a few minutes per model, expect to be well above them.

    python benchmarks/binarized_mnist.py --data-root /work/shared/data/mnist --budget-minutes 3
    python benchmarks/binarized_mnist.py --models pixelcnn,gated-pixelcnn --device cuda --budget-minutes 0
    --epochs 100

References (the published column):
    NADE 88.33: The Neural Autoregressive Distribution Estimator (Larochelle & Murray, 2011), AISTATS.
    MADE 86.64 (ensemble of 32 masks): MADE (Germain et al., 2015), arXiv:1502.03509.
    PixelCNN 81.30, PixelRNN 79.20 (Diagonal BiLSTM): Pixel Recurrent Neural Networks (van den Oord et al.,
    2016), arXiv:1601.06759.
    FVSBN ~97: as reported in the NADE paper.
    VAE 86.76, IWAE 84.78 (k = 50, one stochastic layer): Importance Weighted Autoencoders (Burda et al.,
    2015), arXiv:1509.00519.
"""

import argparse
import json
import math
import sys
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.errors import PPGenError

PUBLISHED = {
    "nade": 88.33,
    "made": 86.64,
    "pixelcnn": 81.30,
    "pixelrnn": 79.20,
    "fvsbn": 97.0,
    "vae": 86.76,
    "iwae": 84.78,
}


def run_one(name: str, train, test, args, device) -> dict:
    r"""Creates, fits and evaluates one model; returns the table row."""
    ppgen.seed_everything(args.seed)
    model = ppgen.create(name, train).to(device)
    budget = args.budget_minutes * 60 if args.budget_minutes > 0 else None
    start = time.process_time()
    result = ppgen.fit(model, train, epochs=args.epochs, budget_seconds=budget, progress=args.progress)
    cpu = time.process_time() - start
    metrics = ppgen.evaluate(model, test, num_samples=args.num_samples)
    return {
        "model": name,
        "published": PUBLISHED.get(name),
        "test_nll_nats": metrics["test_nll_nats"],
        "kind": metrics["test_nll_kind"],
        "test_bpd": metrics["test_bpd"],
        "epochs": result.epochs,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "train_cpu_seconds": cpu,
        "n_params": metrics["n_params"],
        "sample_seconds_per_1000": metrics["sample_seconds_per_1000"],
        "stopped": result.stopped,
    }


def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print()
    print(
        "| model | published NLL | test NLL (nats) | kind | bits/dim | epochs | train s (wall / cpu) "
        "| params | sample s / 1000 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {fmt(r.get('published'))} | error: {r['error']} | | | | | | |")
            continue
        print(
            f"| {r['model']} | {fmt(r['published'])} | {fmt(r['test_nll_nats'])} | {r['kind']} "
            f"| {fmt(r['test_bpd'], 3)} | {r['epochs']} "
            f"| {r['train_seconds']:.0f} / {r['train_cpu_seconds']:.0f} | {r['n_params']:,} "
            f"| {fmt(r['sample_seconds_per_1000'], 1)} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated registry names (default: every registered model in PUBLISHED)",
    )
    parser.add_argument(
        "--data-root", default=None, help="folder with the MNIST IDX files (default $PPGEN_DATA/mnist)"
    )
    parser.add_argument(
        "--budget-minutes", type=float, default=3.0, help="training time per model; 0 = no budget (default 3)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per model (default: until the budget, or the model's default without one)",
    )
    parser.add_argument(
        "--num-samples",
        type=int,
        default=200,
        help="K of the importance-sampled NLL of VAE/IWAE (default 200)",
    )
    parser.add_argument(
        "--test-size", type=int, default=None, help="evaluate on the first N test images (default all 10,000)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--progress", action="store_true", help="show training progress bars")
    add_threads_argument(parser)
    args = parser.parse_args(argv)

    set_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    registered = ppgen.model_names()
    names = args.models.split(",") if args.models else [n for n in PUBLISHED if n in registered]
    try:
        train = ppgen.data.load("mnist", "train", root=args.data_root)
        test = ppgen.data.load("mnist", "test", root=args.data_root)
    except PPGenError as e:
        print(f"binarized_mnist: {e}", file=sys.stderr)
        return 2
    if args.test_size:
        test = test.subset(args.test_size)

    rows = []
    for name in names:
        try:
            row = run_one(name, train, test, args, device)
        except PPGenError as e:
            row = {"model": name, "published": PUBLISHED.get(name), "error": str(e)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    budget = f"{args.budget_minutes:g} min budget" if args.budget_minutes > 0 else "no time budget"
    epochs = f", {args.epochs} epochs max" if args.epochs else ""
    header = (
        f"Binarized MNIST (dynamic binarization for training, fixed test binarization), "
        f"{len(test)} test images, {budget}{epochs} per model, device {device}, "
        f"{torch.get_num_threads()} thread(s), IWAE K = {args.num_samples}"
    )
    print_table(rows, header)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
