"""What Pyro programs cost: ppgen.fit against the hand-written PyTorch loop for the same model.

The same mixture of Bernoullis (K components) on the same data, same batches, same Adam steps:
ppgen traces the Pyro program and enumerates z with TraceEnum_ELBO; the plain loop computes the
logsumexp by hand. Prints seconds per epoch for both and their ratio, and checks that both reach
the same loss.

    python benchmarks/overhead.py [--data digits] [--epochs 30] [--components 24] [--threads 2]
"""

import argparse
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads


def plain_pytorch(
    x: torch.Tensor, components: int, epochs: int, batch_size: int, lr: float, seed: int
) -> tuple[float, float]:
    torch.manual_seed(seed)
    d = x[0].numel()
    weight_logits = torch.zeros(components, requires_grad=True)
    logits = (0.5 * torch.randn(components, d)).requires_grad_()
    opt = torch.optim.Adam([weight_logits, logits], lr=lr)
    flat = x.reshape(len(x), -1)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(flat)).split(batch_size):
            xb = flat[idx]
            lp = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits.unsqueeze(0).expand(len(xb), -1, -1),
                xb.unsqueeze(1).expand(-1, components, -1),
                reduction="none",
            ).sum(-1)
            loss = -torch.logsumexp(lp + weight_logits.log_softmax(0), 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs, float(loss)


def with_ppgen(
    train, components: int, epochs: int, batch_size: int, lr: float, seed: int
) -> tuple[float, float]:
    ppgen.seed_everything(seed)
    model = ppgen.create("mixture", train, components=components)
    result = ppgen.fit(model, train, epochs=epochs, batch_size=batch_size, lr=lr, progress=False)
    return result.seconds / epochs, result.log[-1]["loss"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--components", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    add_threads_argument(p)
    args = p.parse_args()
    set_threads(args.threads)
    train = ppgen.data.load(args.data, "train", root=args.data_root)
    plain_s, plain_loss = plain_pytorch(train.x, args.components, args.epochs, args.batch_size, args.lr, 0)
    ppgen_s, ppgen_loss = with_ppgen(train, args.components, args.epochs, args.batch_size, args.lr, 0)
    print(
        f"mixture of {args.components} Bernoullis on {args.data} ({len(train)} examples, "
        f"batch {args.batch_size}, {args.epochs} epochs, {torch.get_num_threads()} threads)"
    )
    print(f"{'':<14}{'s/epoch':>10}{'final loss':>12}")
    print(f"{'plain torch':<14}{plain_s:>10.4f}{plain_loss:>12.3f}")
    print(f"{'ppgen (Pyro)':<14}{ppgen_s:>10.4f}{ppgen_loss:>12.3f}")
    print(f"ratio ppgen / plain torch: {ppgen_s / plain_s:.2f}x")


if __name__ == "__main__":
    main()
