"""Test NLL on ``patches-rgb`` (8 x 8 RGB patches, 8 levels per channel) in bits per dimension: the
independent and mixture baselines against the colour pixel models (issue 19), which generate each patch
pixel by pixel and R -> G -> B within a pixel.

Every model is fit with its quick preset for patches-rgb (``GenerativeModel.quick_presets``, the
settings of ``ppgen compare --data patches-rgb --quick``); the Diagonal BiLSTM row is PixelRNN's preset
with ``layer="diagonal-bilstm"``. A preset's ``budget_seconds`` (the wall-clock cap of ``compare``) is
dropped here: the epochs decide. The presets were chosen on a validation split held out of train
(``train.holdout(0.15, seed=0)``, with ``--split validation``, which prints the validation bits/dim
after every epoch); the default ``--split test`` fits on the whole train split (6,360 patches) and
scores the test split (2,120 patches from image regions no training patch touches) once. The NLL is
exact (every model here has an exact density), averaged over the split; bits/dim = nats / (192 ln 2).
CPU seconds (``time.process_time``, torch on one thread) are reported beside wall seconds, since the
machine may be shared.

Measured (test split, seed 0, torch on one thread; each row's fit ran as its own process of this script,
same code and seed, on a 2-core machine shared with a load of 12-18, hence wall seconds of 10-25 times
the CPU seconds; "vs indep." is 1 - bits/dim / 2.482):

    model                      bits/dim vs indep.    nats epochs fit cpu s sample cpu s/100  params
    independent                   2.482    +0.0 %  330.25      1       0.2             0.00    1536
    mixture                       0.748   +69.8 %   99.57    150     174.2             0.01   36888
    pixelcnn                      0.342   +86.2 %   45.55     10      92.5             1.91   54136
    gated-pixelcnn                0.406   +83.6 %   54.02      3      66.9             2.38  145080
    pixelrnn-row-lstm             0.401   +83.8 %   53.30      3      47.5             1.45   68792
    pixelrnn-diagonal-bilstm      0.395   +84.1 %   52.51      3     140.6             1.67   83640

The validation split (a random 15 % of train, scored while tuning) is harder than the test region:
independent 2.74, mixture 1.118, pixelcnn 0.546 after 9 epochs, gated-pixelcnn 0.684 and the Row LSTM
0.652 after 3 (the Diagonal BiLSTM 0.938 after 1, against 1.007 for the Row LSTM).

Usage:
    python benchmarks/patches_rgb.py [--models pixelcnn,gated-pixelcnn] [--seed 0]
    python benchmarks/patches_rgb.py --split validation --models pixelcnn --fit '{"epochs": 30}'
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import ppgen  # noqa: E402

DATA = "patches-rgb"
# label -> (registry name, config on top of the quick preset)
ROWS = {
    "independent": ("independent", {}),
    "mixture": ("mixture", {}),
    "pixelcnn": ("pixelcnn", {}),
    "gated-pixelcnn": ("gated-pixelcnn", {}),
    "pixelrnn-row-lstm": ("pixelrnn", {"layer": "row-lstm"}),
    "pixelrnn-diagonal-bilstm": ("pixelrnn", {"layer": "diagonal-bilstm"}),
}


@torch.no_grad()
def bits_per_dim(model, data, batch: int = 500) -> float:
    r"""The exact mean -log p(x) over a split, in bits per dimension."""
    model.eval()
    nats = torch.cat([-model.log_prob(x) for x in data.x.split(batch)]).mean()
    return float(nats) / (data.spec.dim * math.log(2))


def measure(label: str, split: str, fit_override: dict, config_override: dict, seed: int) -> dict:
    r"""Fits one row's model with its preset and scores it: one row of the table."""
    name, config = ROWS[label]
    train = ppgen.data.load(DATA, "train")
    fit_part, score_part = (train, ppgen.data.load(DATA, "test")) if split == "test" else train.holdout(0.15)
    preset = ppgen.get(name).quick_preset(DATA) or {"config": {}, "fit": {}}
    config = {**preset["config"], **config, **config_override}
    options = {**preset["fit"], **fit_override}
    options.pop("budget_seconds", None)  # compare's wall-clock cap: here the epochs decide
    ppgen.seed_everything(seed)
    model = ppgen.create(name, fit_part, **config)
    curve = []
    if split == "validation":  # the validation curve that the presets' epochs were read from

        def on_epoch_end(epoch, row, objective):
            curve.append(round(bits_per_dim(model, score_part), 4))
            print(f"  {label} epoch {epoch}: validation {curve[-1]:.4f} bits/dim", flush=True)
            model.train()

        options["on_epoch_end"] = on_epoch_end
    c0, w0 = time.process_time(), time.perf_counter()
    result = ppgen.fit(model, fit_part, progress=False, **options)
    c1, w1 = time.process_time(), time.perf_counter()
    bpd = bits_per_dim(model, score_part)
    c2 = time.process_time()
    model.sample(100)
    c3 = time.process_time()
    options.pop("on_epoch_end", None)
    return {
        "model": label,
        "bpd": bpd,
        "nats": bpd * score_part.spec.dim * math.log(2),
        "epochs": result.epochs,
        "fit_cpu_s": c1 - c0,
        "fit_wall_s": w1 - w0,
        "score_cpu_s": c2 - c1,
        "sample_cpu_s_per_100": c3 - c2,
        "n_params": model.num_parameters,
        "config": config,
        "fit": options,
        "curve": curve,
    }


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--models", default=",".join(ROWS), help=f"comma-separated among {', '.join(ROWS)}")
    parser.add_argument("--split", choices=["validation", "test"], default="test")
    parser.add_argument("--config", default="{}", help="JSON model kwargs on top of the preset's")
    parser.add_argument("--fit", default="{}", help="JSON fit options on top of the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fitted = "train" if args.split == "test" else "85 % of train"
    print(f"{DATA}: fit on {fitted}, scored on the {args.split} split, exact NLL; seed {args.seed}, ", end="")
    print(f"torch on {torch.get_num_threads()} thread")
    print(
        f"{'model':26s} {'bits/dim':>8s} {'vs indep.':>9s} {'nats':>7s} {'epochs':>6s} {'fit cpu s':>9s} "
        f"{'fit wall s':>10s} {'sample cpu s/100':>16s} {'params':>7s}"
    )
    baseline = None
    for label in args.models.split(","):
        if label not in ROWS:
            raise SystemExit(f"unknown row {label!r}; expected one of: {', '.join(ROWS)}")
        row = measure(label, args.split, json.loads(args.fit), json.loads(args.config), args.seed)
        baseline = row["bpd"] if label == "independent" else baseline
        gain = "-" if baseline is None else f"{100 * (1 - row['bpd'] / baseline):+.1f} %"
        print(
            f"{label:26s} {row['bpd']:8.3f} {gain:>9s} {row['nats']:7.2f} {row['epochs']:6d} "
            f"{row['fit_cpu_s']:9.1f} {row['fit_wall_s']:10.1f} {row['sample_cpu_s_per_100']:16.2f} "
            f"{row['n_params']:7d}",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({"data": DATA, "split": args.split, "seed": args.seed, **row}) + "\n")


if __name__ == "__main__":
    main()
