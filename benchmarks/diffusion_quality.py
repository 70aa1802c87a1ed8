"""Time to quality of ddpm and smld at their default configs on rings8: a curve of quality against CPU time.

Each model trains with its default config and ``fit_defaults`` (``ppgen compare``'s full, non-quick
setting), on one thread. Every ``--every`` epochs it is scored on the held-out split: ddpm by its KL gap
(the ELBO's NLL less the true entropy), both by the VEEGAN/PacGAN mode protocol on 2,500 samples drawn
with the sampler ``ppgen compare`` scores them by (ddpm: DDIM; smld: its Langevin chain). The CPU seconds
are training's own (this process's, the scoring left out). The bars (issue 18): ddpm KL gap <= 0.5,
>= 7/8 modes and >= 60 % high-quality samples; smld >= 7/8 modes and >= 60 %; within 3 CPU-minutes.
At the end, ddpm's samplers (DDIM with S steps, ancestral with all T) are timed by the one sampling
protocol (:func:`ppgen.inference.evaluate.sampling_cost`) and scored on the same 2,500 samples each.

``--split validation`` (the default) trains on train less 15 % and scores on that 15 %
(``Dataset.holdout(0.15, seed=0)``): the split that tunes. ``--split test`` trains on all of train and
scores on test: run it once, for the numbers to report.

    python benchmarks/diffusion_quality.py [--models ddpm,smld] [--split validation] [--every 20]
"""

import argparse
import json
import time

import torch

import ppgen
from ppgen.app.samplers import fast_sampler, sampler_sweep, use_sampler
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.inference.evaluate import sampling_cost, test_log_prob
from ppgen.metrics import mode_coverage

BARS = {"ddpm": {"kl_gap": 0.5, "modes": 7, "hq": 0.6}, "smld": {"kl_gap": None, "modes": 7, "hq": 0.6}}
N_SAMPLES = 2500


@torch.no_grad()
def score(model, data, seed: int = 1) -> dict:
    r"""The KL gap (density models) and the mode metrics of 2,500 samples of compare's sampler."""
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lp, _ = test_log_prob(model, data, num_samples=1)
        with use_sampler(model, fast_sampler(model)):
            x = model.sample(N_SAMPLES)
    cov = mode_coverage(x, data.truth.means, data.truth.std)
    gap = None if lp is None else float(-lp.mean()) - data.entropy
    return {"kl_gap": gap, "modes": cov["modes_covered"], "hq": cov["hq_fraction"]}


def meets(name: str, s: dict) -> bool:
    bar = BARS[name]
    gap_ok = bar["kl_gap"] is None or (s["kl_gap"] is not None and s["kl_gap"] <= bar["kl_gap"])
    return gap_ok and s["modes"] >= bar["modes"] and s["hq"] >= bar["hq"]


def curve(name: str, train, held, every: int, fit_options: dict, config: dict, seed: int):
    r"""Trains ``name`` and scores it every ``every`` epochs; returns (points, model)."""
    ppgen.seed_everything(seed)
    model = ppgen.create(name, train, **config)
    points, eval_cpu = [], [0.0]
    start = time.process_time()

    def on_epoch_end(epoch, row, objective):
        if row["epoch"] % every:
            return
        t = time.process_time()
        trained = t - start - eval_cpu[0]
        was_training = objective.model.training
        points.append({"epoch": row["epoch"], "train_cpu": trained, **score(objective.model, held)})
        objective.model.train(was_training)
        eval_cpu[0] += time.process_time() - t

    result = ppgen.fit(model, train, progress=False, on_epoch_end=on_epoch_end, **fit_options)
    total = time.process_time() - start - eval_cpu[0]
    if not points or points[-1]["epoch"] != result.epochs:
        points.append({"epoch": result.epochs, "train_cpu": total, **score(model, held)})
    return points, model


def sampler_table(model, held, seed: int = 1) -> list[tuple]:
    rows = []
    for sampler in sampler_sweep(model):
        ppgen.seed_everything(seed)
        with use_sampler(model, sampler):
            x, wall, cpu = sampling_cost(model.sample, N_SAMPLES)
        cov = mode_coverage(x, held.truth.means, held.truth.std)
        rows.append((sampler.label, wall, cpu, cov["modes_covered"], cov["hq_fraction"]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ddpm,smld")
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--every", type=int, default=20, help="epochs between scores (default 20)")
    parser.add_argument("--fit", default="{}", help="JSON fit options over fit_defaults (every model)")
    parser.add_argument("--config", default="{}", help="JSON model options over the defaults")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    train, test = ppgen.data.load("rings8", "train"), ppgen.data.load("rings8", "test")
    fit_part, held = train.holdout(0.15, seed=0) if args.split == "validation" else (train, test)
    fit_options, config = json.loads(args.fit), json.loads(args.config)
    for name in args.models.split(","):
        options = {**ppgen.get(name).fit_defaults, **fit_options}
        points, model = curve(name, fit_part, held, args.every, fit_options, config, args.seed)
        first = next((p for p in points if meets(name, p)), None)
        print(
            f"\n{name} on rings8 ({args.split}), fit options {options}, config {config or 'default'}, "
            f"seed {args.seed}, {threads} thread(s); scored by {fast_sampler(model).label}\n"
        )
        print("| epoch | training CPU s | KL gap (nats) | modes | high quality | bars met |")
        print("|---|---|---|---|---|---|")
        for p in points:
            gap = "-" if p["kl_gap"] is None else f"{p['kl_gap']:.3f}"
            print(
                f"| {p['epoch']} | {p['train_cpu']:.1f} | {gap} | {p['modes']}/8 | {100 * p['hq']:.1f}% "
                f"| {'yes' if meets(name, p) else ''} |"
            )
        reached = "never" if first is None else f"{first['train_cpu']:.1f} CPU s (epoch {first['epoch']})"
        print(f"\ntime to quality: {reached}; bars {BARS[name]}")
        if name == "ddpm":
            print(f"\nddpm's samplers, {N_SAMPLES} samples each (batched, after a warm-up):\n")
            print("| sampler | wall s / 1000 | CPU s / 1000 | modes | high quality |")
            print("|---|---|---|---|---|")
            for label, wall, cpu, modes, hq in sampler_table(model, held):
                print(f"| {label} | {wall:.3f} | {cpu:.3f} | {modes}/8 | {100 * hq:.1f}% |")


if __name__ == "__main__":
    main()
