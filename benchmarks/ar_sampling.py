"""NADE sampling: the incremental O(DH) sampler against the naive O(D^2 H) one, in the same run.

The naive sampler is the generic one every autoregressive model inherits
(``AutoregressiveModel.sample``): one full teacher-forced pass of every conditional per dimension.
The incremental sampler carries NADE's running activation a_{i+1} = a_i + W_i x_i instead.
Both draw from the same distribution (tests/test_nade.py checks it); this prints their times and ratio.

    python benchmarks/ar_sampling.py                  # D = 784 (28 x 28), H = 500
    python benchmarks/ar_sampling.py --side 8 --hidden 100 --device cuda
"""

import argparse
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.data import DataSpec
from ppgen.models.autoregressive import AutoregressiveModel


def timed(fn, device, repeats):
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--side", type=int, default=28, help="image side: D = side^2 binary pixels (default 28: D = 784)"
    )
    parser.add_argument("--hidden", type=int, default=500, help="NADE hidden units H (default 500)")
    parser.add_argument("-n", "--num-samples", type=int, default=10, help="samples per call (default 10)")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats, the best is kept (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)
    args = parser.parse_args(argv)

    set_threads(args.threads)
    ppgen.seed_everything(args.seed)
    device = torch.device(args.device)
    spec = DataSpec("binary", (1, args.side, args.side))
    model = ppgen.create("nade", spec, hidden=args.hidden).to(device).eval()
    n = args.num_samples

    with torch.no_grad():
        model.sample(2)
        AutoregressiveModel.sample(model, 2)  # warm up both paths
        fast = timed(lambda: model.sample(n), device, args.repeats)
        naive = timed(lambda: AutoregressiveModel.sample(model, n), device, args.repeats)

    print(
        f"NADE sampling, D = {spec.dim}, H = {args.hidden}, {n} samples per call, device {device}, "
        f"{torch.get_num_threads()} thread(s), best of {args.repeats}"
    )
    print()
    print("| sampler                    | seconds per call | ms per sample | ratio |")
    print("|----------------------------|-----------------:|--------------:|------:|")
    print(f"| incremental O(DH) (ppgen)  | {fast:16.3f} | {1000 * fast / n:13.2f} | {1.0:5.1f} |")
    print(f"| naive O(D^2 H) (recompute) | {naive:16.3f} | {1000 * naive / n:13.2f} | {naive / fast:5.1f} |")
    print()
    print(f"incremental is {naive / fast:.1f}x faster than naive")
    return naive / fast


if __name__ == "__main__":
    main()
