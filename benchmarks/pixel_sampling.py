"""Cached against naive sampling for PixelCNN, Gated PixelCNN and PixelRNN, measured in the same run.

The naive sampler is the generic one every autoregressive model inherits: one full parallel pass of
the network per pixel, D passes for D pixels. The cached sampler (``PixelModel.sequential``) keeps every
layer's activations in buffers and computes each layer once per pixel, at the step where its inputs
become known (the gated vertical stack once per row), so its total work is about one parallel pass.
Both draw from the same distribution (tests/test_pixelcnn.py checks it); this prints times and ratios.

    python benchmarks/pixel_sampling.py                       # 8x8 and 28x28 binary images, 16 samples
    python benchmarks/pixel_sampling.py --sides 28 -n 64 --device cuda
"""

import argparse

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.data import DataSpec
from ppgen.inference.evaluate import sampling_cost

MODELS = ("pixelcnn", "gated-pixelcnn", "pixelrnn")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: all three)")
    parser.add_argument("--sides", default="8,28", help="image sides to time (default 8,28)")
    parser.add_argument("-n", "--num-samples", type=int, default=16, help="samples per call (default 16)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)
    args = parser.parse_args(argv)

    set_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        for name in args.models.split(","):
            ppgen.seed_everything(args.seed)
            model = ppgen.create(name, DataSpec("binary", (1, side, side))).to(device).eval()
            n = args.num_samples  # ppgen's sampling protocol: a warm-up call, then one timed batch
            cached = sampling_cost(model.sample, n, batch_size=n)[1:]
            naive = sampling_cost(lambda k, m=model: m.sample(k, cached=False), n, batch_size=n)[1:]
            cached, naive = [tuple(t * n / 1000 for t in pair) for pair in (cached, naive)]  # s per call
            rows.append((name, side, cached, naive))

    print(
        f"Pixel-model sampling, default configs, {args.num_samples} binary samples per call, "
        f"device {device}, {torch.get_num_threads()} thread(s)"
    )
    print(
        "(CPU seconds are this process's own; they are the better estimate of an idle machine's time "
        "when others share it)"
    )
    print()
    print(
        "| model | image | D | cached s (wall / cpu) | naive s (wall / cpu) | naive / cached (wall) "
        "| naive / cached (cpu) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, side, (cw, cc), (nw, nc) in rows:
        print(
            f"| {name} | {side}x{side} | {side * side} | {cw:.3f} / {cc:.3f} | {nw:.3f} / {nc:.3f} "
            f"| {nw / cw:.1f}x | {nc / max(cc, 1e-9):.1f}x |"
        )


if __name__ == "__main__":
    main()
