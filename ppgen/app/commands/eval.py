"""`ppgen eval RUN_DIR [--data DATA]`: score a trained run on a test split and print its metrics."""

import json

from ppgen.app import runs
from ppgen.app.commands.options import load_split, seed_argument
from ppgen.app.job import resolve_device
from ppgen.errors import PPGenError
from ppgen.inference import evaluate
from ppgen.seed import seed_everything


def add_arguments(p):
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="another data set of the same kind and shape")
    p.add_argument("--data-root", default=None)
    p.add_argument("--kind", default=None)
    p.add_argument("--num-samples", type=int, default=1000, help="K of importance-sampled estimates")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=seed_argument, default=0)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args) -> int:
    if args.num_samples < 1:
        raise PPGenError(f"--num-samples must be a positive integer, got {args.num_samples}")
    model, config = runs.load_run(args.run_dir, map_location=resolve_device(args.device))
    if args.data is None:
        args.data, args.data_root, args.kind = (
            config["data"],
            args.data_root or config.get("data_root"),
            config.get("kind"),
        )
    test = load_split(args, "test")
    model.check_data(test)
    seed_everything(args.seed)
    metrics = evaluate(model, test, num_samples=args.num_samples)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    for key, value in metrics.items():
        print(f"{key:<24} {value:.4f}" if isinstance(value, float) else f"{key:<24} {value}")
    return 0
