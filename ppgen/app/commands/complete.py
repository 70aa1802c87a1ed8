"""`ppgen complete RUN --mask top|bottom|left|right|random:P|FILE --out fig.png`: fill in test pixels."""

from pathlib import Path

import torch

from ppgen.app import runs
from ppgen.app.commands.options import load_split
from ppgen.app.job import resolve_device
from ppgen.errors import PPGenError
from ppgen.inference.tasks.complete import complete, completion_metrics, hidden_mask
from ppgen.seed import seed_everything


def add_arguments(p):
    p.add_argument("run_dir")
    p.add_argument(
        "--mask",
        required=True,
        help="pixels to fill: top, bottom, left, right (that half), random:P or a .npy/.pt file (1 = hidden)",
    )
    p.add_argument("--out", required=True, help="FILE.png (masked inputs, completions, truth) or FILE.pt")
    p.add_argument("-n", type=int, default=8, help="number of test examples")
    p.add_argument("--samples", type=int, default=3, help="completions drawn per example")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite --out")


def run(args) -> int:
    import matplotlib.pyplot as plt  # here: `ppgen complete --help` need not load matplotlib

    from ppgen.app.plots.uses import completion_figure

    out = Path(args.out)
    if out.suffix not in (".pt", ".png"):
        raise PPGenError(f"--out must end in .png or .pt, got {out.name!r}")
    if args.n < 1 or args.samples < 1:
        raise PPGenError(f"-n and --samples must be positive integers, got {args.n} and {args.samples}")
    if out.exists() and not args.force:
        raise PPGenError(f"{out} already exists; pass --force to overwrite it")
    model, config = runs.load_run(args.run_dir, map_location=resolve_device(args.device))
    args.data, args.data_root, args.kind = config["data"], config.get("data_root"), config.get("kind")
    test = load_split(args, "test").subset(args.n)
    hidden = hidden_mask(args.mask, test.event_shape, len(test), seed=args.seed)
    seed_everything(args.seed)
    draws, info, metrics = [], None, []
    for _ in range(args.samples):
        x, info = complete(model, test.x, hidden, y=test.y)
        metrics.append(completion_metrics(model, test.x, x, hidden, info, y=test.y))
        draws.append(x.cpu())
    if out.suffix == ".pt":
        torch.save({"completions": torch.stack(draws, 1), "hidden": hidden, "truth": test.x}, out)
    else:
        if not test.spec.is_image:
            raise PPGenError(f"a .png grid needs image data, not event shape {test.event_shape}; use .pt")
        names = {f"{model.name} #{i + 1}": x for i, x in enumerate(draws)}
        figure = completion_figure(
            test.x, hidden, names, levels=test.spec.num_categories if test.kind != "binary" else None
        )
        figure.savefig(out, dpi=110, bbox_inches="tight")
        plt.close(figure)
    accuracy = [m["pixel_accuracy"] for m in metrics if m["pixel_accuracy"] is not None]
    score = f"pixel accuracy {sum(accuracy) / len(accuracy):.3f}; " if accuracy else ""
    print(f"{len(test)} examples completed ({info['method']}); {score}written to {out}")
    return 0
