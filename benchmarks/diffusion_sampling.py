"""DDPM ancestral sampling (T = 1000 steps) against DDIM (S = 50, 20, 10 steps) on a 2-D mixture.

One DDPM is trained with T = 1000 (training costs the same for any T: one random step per
example), then every sampler draws the same number of samples from it. The table gives wall time,
the speed-up over ancestral sampling measured in this run, and the VEEGAN/PacGAN mode metrics.

    python benchmarks/diffusion_sampling.py --data rings8 [--epochs 200] [--save ddpm.pt | --load ddpm.pt]

References:
    | Denoising Diffusion Implicit Models (Song et al., 2021) https://arxiv.org/abs/2010.02502
"""

import argparse
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.metrics import mode_coverage


def timed_samples(model, n: int, method: str, steps: int | None, repeats: int) -> tuple[torch.Tensor, float]:
    r"""The samples of the last run and the best wall time of ``repeats`` runs, seconds."""
    best, x = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        x = model.sample(n, method=method, steps=steps)
        if x.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return x, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="rings8", choices=["rings8", "grid25"])
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--ddim-steps", default="50,20,10")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's fit_defaults")
    parser.add_argument("--n", type=int, default=2500, help="samples per sampler (2,500 in VEEGAN/PacGAN)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per sampler; the best is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained model's state_dict here")
    parser.add_argument("--load", default=None, help="skip training: load a state_dict written by --save")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    ppgen.seed_everything(args.seed)
    train = ppgen.data.load(args.data)
    model = ppgen.create("ddpm", train, timesteps=args.timesteps).to(args.device)
    if args.load:
        model.load_state_dict(torch.load(args.load, map_location=args.device, weights_only=True))
        print(f"loaded {args.load}")
    else:
        result = ppgen.fit(model, train, epochs=args.epochs, progress=False)
        print(
            f"trained ddpm (T = {args.timesteps}) on {args.data}: {result.epochs} epochs, "
            f"{result.steps} steps, {result.seconds:.0f} s ({result.seconds / result.epochs:.2f} s/epoch)"
        )
        if args.save:
            torch.save(model.state_dict(), args.save)
    model.eval()
    samplers = [("ancestral", None)] + [("ddim", int(s)) for s in args.ddim_steps.split(",")]
    rows = []
    for method, steps in samplers:
        ppgen.seed_everything(args.seed + 1)
        x, seconds = timed_samples(model, args.n, method, steps, args.repeats)
        cov = mode_coverage(x, train.truth.means, train.truth.std)
        rows.append((method, steps or args.timesteps, seconds, cov))
    base = rows[0][2]
    print(f"\n{args.data}, {args.n} samples, device {args.device}, torch threads {torch.get_num_threads()}\n")
    print(
        "| sampler | steps | seconds | speed-up vs ancestral | modes covered | high quality "
        "| mode reverse KL |"
    )
    print("|---|---|---|---|---|---|---|")
    for method, steps, seconds, cov in rows:
        print(
            f"| {method} | {steps} | {seconds:.2f} | {base / seconds:.1f}x "
            f"| {cov['modes_covered']}/{cov['modes_total']} "
            f"| {100 * cov['hq_fraction']:.1f}% | {cov['mode_reverse_kl']:.3f} |"
        )


if __name__ == "__main__":
    main()
