"""GAN sample quality: VEEGAN/PacGAN mode coverage on rings8/grid25 and FD-digits on digits, over seeds.

Each row trains one model from one seed with its default configuration (or ``--epochs``) and scores
2,500 samples (2-D) or 1,000 samples against the 360 test digits (images). Seconds are CPU seconds
of this process (one thread), so that a loaded machine does not inflate them; wall seconds beside.

How the wgan-gp defaults were chosen (2,500 samples, ``coverage_over_seeds`` in tests/test_gan.py, one
CPU thread on a loaded 2-core machine, 150-340 s wall per run, ~120-135 CPU s): grid25 25/25 modes for
seeds 0, 1, 2 with 94.2, 94.5, 92.3% high-quality samples (mean 93.7%); rings8 8/8 modes with 97.7,
96.4, 97.0% (mean 97.0%). On grid25 seed 0, the former defaults (no Fourier features, width 128,
8-dimensional z, penalty 0.1, 200 epochs, decay 0.985) gave 23/25 modes and 17% HQ, samples spread
over the square; Fourier features alone 25/25 and 57%; with penalty 1 65%; then 300 epochs with decay
0.99 and the 256-wide generator 91-93%; then z of 2 dimensions 94%. Averaging the generator's weights
(EMA 0.999), penalty 3 or 10, five critic steps and a faster decay (0.985) did not help; penalty 0.1
and 3 converged much more slowly; 8 latent dimensions on 2-D data gave 2-5 points fewer HQ.

Example:
    python benchmarks/gan_quality.py --data rings8,grid25 --models gan,wgan-gp --seeds 0,1,2
    python benchmarks/gan_quality.py --data digits --models dcgan,independent --seeds 0
"""

import argparse
import json
import statistics
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.metrics import image_sample_quality, mode_coverage


def run(model_name: str, data_name: str, seed: int, epochs: int | None, root=None) -> dict:
    ppgen.seed_everything(seed)
    train, test = (
        ppgen.data.load(data_name, "train", root=root),
        ppgen.data.load(data_name, "test", root=root),
    )
    model = ppgen.create(model_name, train)
    options = {}
    if (
        model.family == "adversarial"
        and train.truth is not None
        and getattr(train.truth, "modes", None) is not None
    ):
        options = {"modes": train.truth.means, "mode_std": train.truth.std}
    cpu, wall = time.process_time(), time.perf_counter()
    result = ppgen.fit(model, train, epochs=epochs, progress=False, **options)
    row = {
        "model": model_name,
        "data": data_name,
        "seed": seed,
        "epochs": result.epochs,
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
    }
    with torch.no_grad():
        if train.spec.is_image:
            row.update(image_sample_quality(model.sample(1000), test, root=root))
        else:
            row.update(mode_coverage(model.sample(2500), train.truth.means, train.truth.std))
    return row


def grouped(rows: list[dict]):
    r"""Yields ``((model, data), runs, mean)`` per model and data set; ``mean(key)`` averages over seeds."""
    for key in dict.fromkeys((r["model"], r["data"]) for r in rows):
        runs = [r for r in rows if (r["model"], r["data"]) == key]
        yield key, runs, lambda k, runs=runs: statistics.mean(r[k] for r in runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="gan,wgan-gp")
    p.add_argument("--data", default="rings8,grid25")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="default: each model's fit_defaults")
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None, help="also write the rows here")
    add_threads_argument(p)
    args = p.parse_args()
    set_threads(args.threads)
    rows = []
    for data_name in args.data.split(","):
        for model_name in args.models.split(","):
            for seed in map(int, args.seeds.split(",")):
                row = run(model_name, data_name, seed, args.epochs, args.data_root)
                rows.append(row)
                print(
                    json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                    flush=True,
                )
    print()
    two_d = [r for r in rows if "modes_covered" in r]
    if two_d:
        print("| model | data | seeds | epochs | CPU s / run | modes covered | HQ % | reverse KL |")
        print("|---|---|---|---|---|---|---|---|")
        for key, rs, mean in grouped(two_d):
            print(
                f"| {key[0]} | {key[1]} | {len(rs)} | {rs[0]['epochs']} | {mean('cpu_s'):.0f} "
                f"| {mean('modes_covered'):.2f}/{rs[0]['modes_total']} "
                f"({', '.join(str(r['modes_covered']) for r in rs)}) | {100 * mean('hq_fraction'):.1f} "
                f"| {mean('mode_reverse_kl'):.3f} |"
            )
    images = [r for r in rows if "fd_digits" in r]
    if images:
        print("| model | data | seeds | epochs | CPU s / run | FD-digits | precision | recall | MMD |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key, rs, mean in grouped(images):
            print(
                f"| {key[0]} | {key[1]} | {len(rs)} | {rs[0]['epochs']} | {mean('cpu_s'):.0f} "
                f"| {mean('fd_digits'):.2f} | {mean('precision'):.3f} | {mean('recall'):.3f} "
                f"| {mean('mmd'):.4f} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
