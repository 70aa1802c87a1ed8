"""Cached against naive sampling for PixelCNN, Gated PixelCNN and PixelRNN, measured in the same run.

The naive sampler is the generic one every autoregressive model inherits: one full parallel pass of
the network per pixel, D passes for D pixels. The cached sampler (``PixelModel.sequential``) keeps every
layer's activations in buffers and computes each layer once per pixel, at the step where its inputs
become known (the gated vertical stack, the Row LSTM's state-to-state term and the Diagonal BiLSTM's
right-to-left scan once per row), so its total work is about one parallel pass. At small batches that
work is a few dozen tiny operations per pixel, so the cached sampler is built to keep their number and
torch's per-call overhead down: channels-last buffers in which a masked kernel's window at a pixel is
one ``index_select`` and one ``addmm`` with the kernel flattened once per call
(``MaskedConv2d.at`` on a ``RasterGrid``), biases and class-conditioning terms folded into vectors,
the 1x1 head as matrices, pre-drawn logistic / Gumbel noise, and no host synchronisation per pixel.
Both draw from the same distribution (tests/test_pixelcnn.py and tests/test_colour.py check it, and
that the cached path's conditionals equal the parallel pass's); this prints times and ratios.

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
