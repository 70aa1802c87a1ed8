"""What the VampPrior costs: its matrix-product mixture density against Pyro's MixtureSameFamily, and a
training step of the VAE and the IWAE with the VampPrior against the same step with N(0, I).

Prints seconds per call and the ratios, and checks that both densities agree.

    python benchmarks/vamp_prior.py [--components 50] [--latent-dim 16] [--particles 30] [--threads 1]
"""

import argparse
import time

import pyro.distributions as dist
import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.likelihoods.vamp_prior import DiagonalNormalMixture


def seconds_per_call(fn, repeats: int) -> float:
    for _ in range(3):  # warm-up
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def density_ratio(args) -> None:
    g = torch.Generator().manual_seed(0)
    K, L = args.components, args.latent_dim
    loc = torch.randn(K, L, generator=g).requires_grad_()
    log_scale = (0.3 * torch.randn(K, L, generator=g)).requires_grad_()
    z = torch.randn(args.particles, args.batch_size, L, generator=g).requires_grad_()
    logits = torch.zeros(K)

    def fast():
        DiagonalNormalMixture(logits, loc, log_scale.exp()).log_prob(z).sum().backward()

    def pyro_mixture():
        dist.MixtureSameFamily(
            dist.Categorical(logits=logits), dist.Normal(loc, log_scale.exp()).to_event(1)
        ).log_prob(z).sum().backward()

    with torch.no_grad():
        a = DiagonalNormalMixture(logits, loc, log_scale.exp()).log_prob(z)
        b = dist.MixtureSameFamily(
            dist.Categorical(logits=logits), dist.Normal(loc, log_scale.exp()).to_event(1)
        ).log_prob(z)
    t_fast, t_pyro = seconds_per_call(fast, args.repeats), seconds_per_call(pyro_mixture, args.repeats)
    print(
        f"log p(z) + backward, z {tuple(z.shape)}, K = {K}: matrix products {t_fast * 1e3:.2f} ms, "
        f"MixtureSameFamily {t_pyro * 1e3:.2f} ms, ratio {t_pyro / t_fast:.1f}x "
        f"(max difference {float((a - b).abs().max()):.1e})"
    )


def step_ratio(args) -> None:
    data = ppgen.data.load("digits", "train")
    x = data.x[: args.batch_size]
    for name in ("vae", "iwae"):
        times = {}
        for prior in ("standard", "vamp"):
            ppgen.seed_everything(0)
            model = ppgen.create(name, data, prior=prior)
            model.initialize(data)
            loss_fn = model.elbo()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)

            def step(model=model, loss_fn=loss_fn, opt=opt):
                loss = loss_fn.differentiable_loss(model.model, model.guide, x, None)
                opt.zero_grad()
                loss.backward()
                opt.step()

            times[prior] = seconds_per_call(step, args.repeats)
        print(
            f"{name} training step (batch {args.batch_size}): N(0, I) {times['standard'] * 1e3:.1f} ms, "
            f"VampPrior {times['vamp'] * 1e3:.1f} ms, ratio {times['vamp'] / times['standard']:.2f}"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--components", type=int, default=50)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--particles", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=50)
    add_threads_argument(p)
    args = p.parse_args()
    set_threads(args.threads)
    density_ratio(args)
    step_ratio(args)


if __name__ == "__main__":
    main()
