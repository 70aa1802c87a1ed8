"""DDPM ancestral sampling (T = 1000 steps) against DDIM (S = 50, 20, 10 steps) on a 2-D mixture.

One DDPM is trained with T = 1000 (training costs the same for any T: one random step per
example), then every sampler draws the same number of samples from it, timed by ppgen's one sampling
protocol (:func:`ppgen.inference.evaluate.sampling_cost`: batched, after a warm-up call, wall and CPU).
The table gives seconds per 1000 samples, the speed-up over ancestral sampling measured in this run,
and the VEEGAN/PacGAN mode metrics. ``benchmarks/diffusion_quality.py`` gives the time-to-quality
curve of training.

    python benchmarks/diffusion_sampling.py --data rings8 [--epochs 200] [--save ddpm.pt | --load ddpm.pt]

References:
    | Denoising Diffusion Implicit Models (Song et al., 2021) https://arxiv.org/abs/2010.02502
"""

import argparse
import functools

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.inference.evaluate import sampling_cost
from ppgen.metrics import mode_coverage


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="rings8", choices=["rings8", "grid25"])
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--ddim-steps", default="50,20,10")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's fit_defaults")
    parser.add_argument("--n", type=int, default=2500, help="samples per sampler (2,500 in VEEGAN/PacGAN)")
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
        sample = functools.partial(model.sample, method=method, steps=steps)
        x, wall, cpu = sampling_cost(sample, args.n)
        cov = mode_coverage(x, train.truth.means, train.truth.std)
        rows.append((method, steps or args.timesteps, wall, cpu, cov))
    base = rows[0][3]
    print(f"\n{args.data}, {args.n} samples, device {args.device}, torch threads {torch.get_num_threads()}\n")
    print(
        "| sampler | steps | wall s / 1000 | CPU s / 1000 | speed-up vs ancestral (CPU) | modes covered "
        "| high quality | mode reverse KL |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method, steps, wall, cpu, cov in rows:
        print(
            f"| {method} | {steps} | {wall:.3f} | {cpu:.3f} | {base / cpu:.1f}x "
            f"| {cov['modes_covered']}/{cov['modes_total']} "
            f"| {100 * cov['hq_fraction']:.1f}% | {cov['mode_reverse_kl']:.3f} |"
        )


if __name__ == "__main__":
    main()
