"""ppgen's neural spline flow against zuko's, from one run: CPU time per training step, ``log_prob`` and
``sample``, and the test KL gap on rings8 after the same number of steps.

Both flows have 4 autoregressive rational-quadratic spline transforms with 16 bins and MADE networks of
hidden widths (64, 64); both train on the same mini-batches with Adam at the same learning rate, the same
per-epoch decay (to a floor of 1 %) and gradient-norm clipping: ppgen through ``ppgen.fit`` (its whole
training path, trainer included), zuko through the loop its documentation shows. Times are CPU seconds
(``time.process_time``) on one torch thread unless ``--threads`` says otherwise; ``log_prob`` and ``sample``
are timed on the 5,000 test points (``log_prob``) and 5,000 draws (``sample``), without gradients, best of
``--repeats``, the two libraries called in turn in each round (so that load on the machine falls on both
alike). The KL gap is the test NLL minus the true entropy (nats); ratios are ppgen / zuko, so < 1 means
ppgen is faster.

    python benchmarks/flows_vs_zuko.py [--steps 3000] [--seeds 0 1] [--quick] [--data rings8]

zuko comes from the optional ``bench`` extra (``pip install ppgen[bench]``).
"""

import argparse
import math
import time

import torch

import ppgen
from ppgen.data import batches


def _best_cpu_alternating(fns: dict, repeats: int) -> dict:
    r"""The least CPU seconds of each of ``fns`` over ``repeats`` rounds, calling them in turn in every
    round, so that load on the machine falls on all of them alike."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def train_ppgen(train, args, seed: int):
    ppgen.seed_everything(seed)
    model = ppgen.create("nsf", train, num_layers=4, hidden_dims=(64, 64), count_bins=args.bins)
    generator = torch.Generator().manual_seed(seed)
    start = time.process_time()
    ppgen.fit(
        model,
        train,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=args.lr_decay,
        min_lr_fraction=args.min_lr_fraction,
        clip_norm=args.clip_norm,
        generator=generator,
        progress=False,
    )
    seconds = time.process_time() - start
    return model, seconds / args.steps, model.log_prob, model.sample


def train_zuko(train, args, seed: int):
    import zuko

    ppgen.seed_everything(seed)
    flow = zuko.flows.NSF(train.x.shape[1], transforms=4, hidden_features=(64, 64), bins=args.bins)
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    steps, epoch = 0, 0
    flow.train()
    start = time.process_time()
    while steps < args.steps:
        for x, _ in batches(train, args.batch_size, shuffle=True, generator=generator):
            loss = -flow().log_prob(x).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), args.clip_norm)
            opt.step()
            steps += 1
            if steps >= args.steps:
                break
        epoch += 1
        for group in opt.param_groups:
            group["lr"] = args.lr * max(args.lr_decay**epoch, args.min_lr_fraction)
    seconds = time.process_time() - start
    flow.eval()
    return flow, seconds / args.steps, lambda x: flow().log_prob(x), lambda n: flow().sample((n,))


def measure(train, test, args, seed: int) -> dict:
    r"""Trains both flows, then times their ``log_prob`` and ``sample`` in alternation: {name: row}."""
    trained = {"ppgen": train_ppgen(train, args, seed), "zuko": train_zuko(train, args, seed)}
    rows = {}
    with torch.no_grad():
        for name, (_, step_s, log_prob, _) in trained.items():
            kl_gap = float(-log_prob(test.x).double().mean()) - test.entropy
            rows[name] = {"step": step_s, "kl_gap": kl_gap}
        scoring = {name: (lambda f=t[2]: f(test.x)) for name, t in trained.items()}
        sampling = {name: (lambda f=t[3]: f(len(test))) for name, t in trained.items()}
        for key, fns in (("log_prob", scoring), ("sample", sampling)):
            for name, seconds in _best_cpu_alternating(fns, args.repeats).items():
                rows[name][key] = seconds
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="rings8", help="a 2-D synthetic set with a true density")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--quick", action="store_true", help="300 steps, one seed (a check, not a result)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--bins", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-decay", type=float, default=0.966, help="per epoch")
    p.add_argument("--min-lr-fraction", type=float, default=0.01)
    p.add_argument("--clip-norm", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.quick:
        args.steps, args.seeds, args.repeats = 300, args.seeds[:1], 3
    torch.set_num_threads(args.threads)
    train, test = ppgen.data.load(args.data, "train"), ppgen.data.load(args.data, "test")
    if test.entropy is None:
        raise SystemExit(f"{args.data} has no closed-form density; use rings8, grid25 or checkerboard")

    print(
        f"nsf vs zuko.flows.NSF on {args.data}: 4 transforms, hidden (64, 64), {args.bins} bins, batch "
        f"{args.batch_size}, {args.steps} steps, Adam lr {args.lr} x {args.lr_decay}/epoch, clip "
        f"{args.clip_norm}; {torch.get_num_threads()} thread(s), CPU seconds"
    )
    header = f"{'seed':>4} {'':<6}{'step ms':>9}{'log_prob ms':>13}{'sample ms':>11}{'KL gap':>9}"
    print(header)
    ratios = {k: [] for k in ("step", "log_prob", "sample")}
    for seed in args.seeds:
        rows = measure(train, test, args, seed)
        for name, r in rows.items():
            print(
                f"{seed:>4} {name:<6}{1e3 * r['step']:>9.3f}{1e3 * r['log_prob']:>13.2f}"
                f"{1e3 * r['sample']:>11.2f}{r['kl_gap']:>9.4f}"
            )
        for k in ratios:
            ratios[k].append(rows["ppgen"][k] / rows["zuko"][k])
    print()
    print(f"{'ratio ppgen / zuko':<20}{'min':>7}{'max':>7}")
    for k, v in ratios.items():
        print(f"{k:<20}{min(v):>7.2f}{max(v):>7.2f}")


if __name__ == "__main__":
    main()
