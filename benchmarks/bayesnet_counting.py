"""Markov-k Bayes nets on pixels: ppgen's `bayesnet` against a hand-written PyTorch counter, in the same run.

The hand-written version is what one would write for this one structure: each pixel's context is the
k previous pixels read as a k-bit number (zero-padded at the start, which leaves the estimate of every
used row unchanged), counts by ``index_put_``, log-probabilities by one gather. ppgen's version is the
general Bayes net (any DAG, tables grouped by shape) behind ``ppgen.create("bayesnet")`` and ``ppgen.fit``.
Both are the same add-one estimate, so their test NLLs must agree; this prints them, the seconds of
each, and the ratios ppgen / hand-written (> 1: ppgen is slower). "fit ppgen" goes through ``ppgen.fit``
(the one training loop: input checks, a state copy per epoch, the counting objective); "fit net" calls
``BayesNet.fit`` on the tensor directly, the cost of the general tables alone.

    python benchmarks/bayesnet_counting.py                                    # digits, 64 pixels
    python benchmarks/bayesnet_counting.py --data mnist --data-root /work/shared/data/mnist
"""

import argparse
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def contexts(x: torch.Tensor, k: int) -> torch.Tensor:
    r"""x: (N, D) long -> (N, D) the k previous pixels as a number, most recent lowest."""
    padded = torch.nn.functional.pad(x, (k, 0))
    return (
        sum(padded[:, k - j : padded.shape[1] - j] << (j - 1) for j in range(1, k + 1))
        if k
        else torch.zeros_like(x)
    )


def hand_fit(x: torch.Tensor, k: int, smoothing: float) -> torch.Tensor:
    n, d = x.shape
    counts = torch.zeros(d, 2**k, 2, dtype=torch.float64)
    pixel = torch.arange(d).expand(n, d)
    counts.index_put_((pixel, contexts(x, k), x), torch.ones(n, d, dtype=torch.float64), accumulate=True)
    return ((counts + smoothing) / (counts.sum(-1, keepdim=True) + 2 * smoothing)).log()


def hand_log_prob(logp: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    return logp[torch.arange(x.shape[1]), contexts(x, k), x].sum(1)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="digits", help="a binary data set (default digits)")
    parser.add_argument("--data-root", default=None, help="folder with the MNIST files")
    parser.add_argument("--orders", default="1,2,4,8", help="Markov orders k (default 1,2,4,8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, the best is kept (default 3)")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    train, test = (
        ppgen.data.load(args.data, "train", root=args.data_root),
        ppgen.data.load(args.data, "test", root=args.data_root),
    )
    if train.kind != "binary":
        raise SystemExit(f"{args.data} is {train.kind}; this benchmark counts binary pixels")
    xtr, xte = train.x.reshape(len(train), -1).long(), test.x.reshape(len(test), -1).long()
    print(
        f"{args.data}: {len(train)} train / {len(test)} test, D = {xtr.shape[1]}; "
        f"best of {args.repeats}; one thread"
    )
    print(
        f"{'k':>3} {'params':>10} {'NLL ppgen':>10} {'NLL hand':>10} {'fit s ppgen':>12} {'fit s net':>10} "
        f"{'fit s hand':>11} {'ratio':>6} {'net ratio':>9} "
        f"{'logp s ppgen':>13} {'logp s hand':>12} {'ratio':>6}"
    )
    for k in map(int, args.orders.split(",")):
        model = ppgen.create("bayesnet", train, structure="markov", order=k, smoothing=1.0)
        fit_ppgen, _ = timed(
            lambda m=model: ppgen.fit(m, train, epochs=1, batch_size=len(train), progress=False), args.repeats
        )
        fit_net, _ = timed(lambda m=model: m.net.fit(xtr, smoothing=1.0), args.repeats)
        fit_hand, logp = timed(lambda k=k: hand_fit(xtr, k, 1.0), args.repeats)
        with torch.no_grad():
            lp_ppgen_s, lp_ppgen = timed(lambda m=model: m.log_prob(test.x), args.repeats)
        lp_hand_s, lp_hand = timed(lambda lp=logp, k=k: hand_log_prob(lp, xte, k), args.repeats)
        nll_p, nll_h = float(-lp_ppgen.double().mean()), float(-lp_hand.mean())
        assert abs(nll_p - nll_h) < 1e-3 * max(1.0, abs(nll_h)), (nll_p, nll_h)
        print(
            f"{k:>3} {model.num_parameters:>10,} {nll_p:>10.3f} {nll_h:>10.3f} "
            f"{fit_ppgen:>12.4f} {fit_net:>10.4f} "
            f"{fit_hand:>11.4f} {fit_ppgen / fit_hand:>6.2f} {fit_net / fit_hand:>9.2f} "
            f"{lp_ppgen_s:>13.4f} {lp_hand_s:>12.4f} {lp_ppgen_s / lp_hand_s:>6.2f}"
        )


if __name__ == "__main__":
    main()
