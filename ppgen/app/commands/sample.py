"""`ppgen sample RUN_DIR -n N --out FILE`: draw samples from a trained run (.pt tensor or .png grid)."""

import io
from pathlib import Path

import torch

from ppgen.app import runs
from ppgen.app.commands.options import load_split, seed_argument
from ppgen.app.job import resolve_device
from ppgen.errors import PPGenError
from ppgen.seed import seed_everything


def add_arguments(p):
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--out", required=True, help="FILE.pt or FILE.png")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=seed_argument, default=0)
    p.add_argument("--force", action="store_true", help="overwrite --out")


def run(args) -> int:
    import matplotlib.pyplot as plt  # here: `ppgen sample --help` need not load matplotlib

    from ppgen.app.plots import sample_figure

    out = Path(args.out)
    if out.suffix not in (".pt", ".png"):
        raise PPGenError(f"--out must end in .pt or .png, got {out.name!r}")
    if args.n < 1:
        raise PPGenError(f"-n must be a positive integer, got {args.n}")
    if out.exists() and not args.force:
        raise PPGenError(f"{out} already exists; pass --force to overwrite it")
    if out.is_dir():
        raise PPGenError(f"{out} is a folder; expected a file name ending in .pt or .png")
    if not out.absolute().parent.is_dir():
        raise PPGenError(f"cannot write {out}: the folder {out.absolute().parent} does not exist")
    model, config = runs.load_run(args.run_dir, map_location=resolve_device(args.device))
    seed_everything(args.seed)
    with torch.no_grad():
        x = model.sample(args.n).cpu()
    buffer = io.BytesIO()
    if out.suffix == ".pt":
        torch.save(x, buffer)
    else:
        args.data, args.data_root, args.kind = config["data"], config.get("data_root"), config.get("kind")
        figure = sample_figure(x, load_split(args, "test"), title=f"{model.name} samples")
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
    runs.atomic_write(out, buffer.getvalue())
    print(f"{args.n} samples of shape {tuple(x.shape[1:])} written to {out}")
    return 0
