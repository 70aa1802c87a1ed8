"""NADE sampling: the incremental O(DH) sampler against the naive O(D^2 H) one, in the same run.

The naive sampler is the generic one every autoregressive model inherits
(``AutoregressiveModel.sample``): one full teacher-forced pass of every conditional per dimension.
The incremental sampler carries NADE's running activation a_{i+1} = a_i + W_i x_i instead.
Both draw from the same distribution (tests/test_nade.py checks it); this prints their times and ratio.

    python benchmarks/ar_sampling.py                  # D = 784 (28 x 28), H = 500
    python benchmarks/ar_sampling.py --side 8 --hidden 100 --device cuda
"""

import argparse

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.data import DataSpec
from ppgen.inference.evaluate import sampling_cost
from ppgen.models.autoregressive import AutoregressiveModel


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--side", type=int, default=28, help="image side: D = side^2 binary pixels (default 28: D = 784)"
    )
    parser.add_argument("--hidden", type=int, default=500, help="NADE hidden units H (default 500)")
    parser.add_argument("-n", "--num-samples", type=int, default=10, help="samples per call (default 10)")
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

    # ppgen's sampling protocol: a warm-up call, then one timed batch; wall and CPU seconds per 1000 samples
    _, fast, fast_cpu = sampling_cost(model.sample, n, batch_size=n)
    _, naive, naive_cpu = sampling_cost(lambda k: AutoregressiveModel.sample(model, k), n, batch_size=n)

    print(
        f"NADE sampling, D = {spec.dim}, H = {args.hidden}, {n} samples in one call after a warm-up, "
        f"device {device}, {torch.get_num_threads()} thread(s)"
    )
    print()
    print("| sampler | ms per sample (wall) | ms per sample (CPU) | ratio (wall) | ratio (CPU) |")
    print("|---|--:|--:|--:|--:|")
    print(f"| incremental O(DH) (ppgen) | {fast:.2f} | {fast_cpu:.2f} | 1.0 | 1.0 |")
    print(
        f"| naive O(D^2 H) (recompute) | {naive:.2f} | {naive_cpu:.2f} | {naive / fast:.1f} "
        f"| {naive_cpu / fast_cpu:.1f} |"
    )
    print()
    print(f"incremental is {naive / fast:.1f}x faster than naive (wall), {naive_cpu / fast_cpu:.1f}x (CPU)")
    return naive / fast


if __name__ == "__main__":
    main()
