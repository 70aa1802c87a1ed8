"""What ppgen's training path costs: ``ppgen.fit`` against a loop written directly in PyTorch, per step.

Three workloads, from one run, each trained both ways from the same initial weights on the same
mini-batches (the same shuffling generator):

- ``vae``: the default VAE on digits (VampPrior, batch 128, Adam 1e-3, weight average 0.998). ppgen traces
  the Pyro program (``Trace_ELBO``); the plain loop computes the same one-sample ELBO by hand with the
  model's own networks and keeps the same weight average.
- ``mixture``: 24 Bernoulli components on digits (batch 128, Adam 0.05). ppgen's loss is the Pyro
  program's ``TraceEnum_ELBO`` loss computed without the trace (``training_loss``, checked equal in
  tests/test_training_path.py); the plain loop writes the logsumexp, with the components' log-likelihoods
  as the same matrix product x l - softplus(l) (``ppgen.likelihoods.pairwise_log_prob``; written with
  ``binary_cross_entropy_with_logits`` on a (B, K, D) tensor a plain step takes ~2.2x as long).
- ``bayesnet``: the order-2 Markov Bayes net on digits fit by counting (one batch per epoch, a ~1 ms
  step). ppgen runs the counting objective through ``ppgen.fit``; the plain loop counts with
  ``index_put_`` and scores with a gather (as ``benchmarks/bayesnet_counting.py``).

Times are CPU seconds (``time.process_time``) per optimisation step, the best of ``--repeats`` runs of each
loop (they alternate, so machine load hits both alike); torch runs on ``--threads`` threads (1). Both
loops report the same quantity: the mean training loss of the last epoch (the mean over its batches of
the per-example loss), which must agree up to Monte Carlo noise (vae) or exactly (mixture, bayesnet).

    python benchmarks/overhead.py [--epochs 10] [--repeats 5] [--quick] [--only vae mixture bayesnet]
"""

import argparse
import copy
import math
import time

import torch
import torch.nn.functional as F

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.data import batches


def best_of(fn, repeats: int) -> tuple[float, float]:
    r"""(least CPU seconds a step over ``repeats`` calls, the last loss); fn returns (steps, loss)."""
    best, loss = math.inf, None
    for _ in range(repeats):
        start = time.process_time()
        steps, loss = fn()
        best = min(best, (time.process_time() - start) / steps)
    return best, loss


def last_epoch_loss(result) -> float:
    return result.log[-1]["loss"]


# --- vae ----------------------------------------------------------------------------------------------
def vae_ppgen(model0, train, epochs, seed):
    model = copy.deepcopy(model0)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    result = ppgen.fit(model, train, epochs=epochs, generator=gen, progress=False)
    return result.steps, last_epoch_loss(result)


def vae_plain(model0, train, epochs, seed):
    m = copy.deepcopy(model0)
    m.train()
    params = list(m.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    avg = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    k = m.vamp.pseudo_inputs.shape[0]

    def encode(inputs):
        loc, pre = m.to_posterior(m.features(inputs)).chunk(2, dim=-1)
        return loc, F.softplus(pre) + 1e-5

    steps = 0
    for _ in range(epochs):
        losses = []
        for x, _ in batches(train, 128, shuffle=True, generator=gen):
            flat = x.reshape(len(x), -1)
            loc, scale = encode(2 * flat - 1)  # (B, L)
            eps = torch.randn_like(loc)
            z = loc + scale * eps
            log_q = (-0.5 * eps**2 - scale.log() - half_log_2pi).sum(-1)
            ploc, pscale = encode(F.hardtanh(m.vamp.pseudo_inputs))  # (K, L)
            zk = (z.unsqueeze(1) - ploc) / pscale  # (B, K, L)
            log_pz = (-0.5 * zk**2 - pscale.log() - half_log_2pi).sum(-1).logsumexp(-1) - math.log(k)
            logits = m.decoder(z)
            log_px = -F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(-1)
            loss = -(log_px + log_pz - log_q).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                d = min(0.998, (1 + steps) / (10 + steps))
                torch._foreach_lerp_(avg, [p.detach() for p in params], 1 - d)
            losses.append(loss.item())
            steps += 1
    return steps, sum(losses) / len(losses)


# --- mixture ------------------------------------------------------------------------------------------
def mixture_ppgen(model0, train, epochs, seed):
    model = copy.deepcopy(model0)
    gen = torch.Generator().manual_seed(seed)
    result = ppgen.fit(model, train, epochs=epochs, batch_size=128, lr=0.05, generator=gen, progress=False)
    return result.steps, last_epoch_loss(result)


def mixture_plain(model0, train, epochs, seed):
    weight_logits = model0.weight_logits.detach().clone().requires_grad_()
    logits = model0.params.detach().clone().reshape(model0.components, -1).requires_grad_()
    opt = torch.optim.Adam([weight_logits, logits], lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    steps = 0
    for _ in range(epochs):
        losses = []
        for x, _ in batches(train, 128, shuffle=True, generator=gen):
            lp = x.reshape(len(x), -1) @ logits.T - F.softplus(logits).sum(-1)  # (B, K): -BCE summed
            loss = -torch.logsumexp(lp + weight_logits.log_softmax(0), 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            steps += 1
    return steps, sum(losses) / len(losses)


# --- bayesnet -----------------------------------------------------------------------------------------
def contexts(x: torch.Tensor, k: int) -> torch.Tensor:
    r"""x: (N, D) long -> (N, D) the k previous pixels as a number, most recent lowest."""
    padded = F.pad(x, (k, 0))
    return sum(padded[:, k - j : padded.shape[1] - j] << (j - 1) for j in range(1, k + 1))


def bayesnet_ppgen(model0, train, epochs, seed):
    model = copy.deepcopy(model0)
    result = ppgen.fit(model, train, epochs=epochs, progress=False)
    return result.steps, last_epoch_loss(result)


def bayesnet_plain(model0, train, epochs, seed, k=2, smoothing=1.0):
    n, d = len(train), train.x[0].numel()
    logp = torch.full((d, 2**k, 2), -math.log(2), dtype=torch.float64)  # ppgen's initial tables: uniform
    pixel = torch.arange(d).expand(n, d)
    for _ in range(epochs):
        x = train.x.reshape(n, -1).long()
        ctx = contexts(x, k)
        loss = float(-logp[pixel, ctx, x].sum(1).mean())
        counts = torch.zeros(d, 2**k, 2, dtype=torch.float64)
        counts.index_put_((pixel, ctx, x), torch.ones(n, d, dtype=torch.float64), accumulate=True)
        logp = ((counts + smoothing) / (counts.sum(-1, keepdim=True) + 2 * smoothing)).log()
    return epochs, loss


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="epochs of vae and mixture (12 steps each)")
    p.add_argument("--bayesnet-epochs", type=int, default=300, help="epochs (= steps) of the Bayes net")
    p.add_argument("--repeats", type=int, default=5)
    add_threads_argument(p)
    p.add_argument("--quick", action="store_true", help="2 epochs, 50 Bayes-net epochs, 1 repeat")
    p.add_argument("--only", nargs="+", choices=("vae", "mixture", "bayesnet"), help="these workloads only")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.bayesnet_epochs, args.repeats = 2, 50, 1
    set_threads(args.threads)
    train = ppgen.data.load("digits", "train")
    seed = 0

    ppgen.seed_everything(seed)
    vae = ppgen.create("vae", train)
    vae.initialize(train)  # the VampPrior's pseudo-inputs, once, shared by both loops
    ppgen.seed_everything(seed)
    mixture = ppgen.create("mixture", train, components=24)
    bayesnet = ppgen.create("bayesnet", train, structure="markov", order=2, smoothing=1.0)
    workloads = [
        ("vae", vae, vae_ppgen, vae_plain, args.epochs),
        ("mixture", mixture, mixture_ppgen, mixture_plain, args.epochs),
        ("bayesnet", bayesnet, bayesnet_ppgen, bayesnet_plain, args.bayesnet_epochs),
    ]
    workloads = [w for w in workloads if not args.only or w[0] in args.only]
    print(
        f"ppgen.fit vs plain PyTorch on digits ({len(train)} examples): CPU ms per step, best of "
        f"{args.repeats}; {torch.get_num_threads()} thread(s); loss = mean over the last epoch's batches"
    )
    columns = (
        ("steps", 7),
        ("plain ms", 10),
        ("ppgen ms", 10),
        ("ratio", 7),
        ("plain loss", 12),
        ("ppgen loss", 12),
    )
    print(f"{'workload':<10}" + "".join(f"{c:>{w}}" for c, w in columns))
    for name, model0, with_ppgen, plain, epochs in workloads:
        plain_s, ppgen_s, plain_loss, ppgen_loss = math.inf, math.inf, None, None
        for _ in range(args.repeats):  # alternate, so that load on the machine hits both alike
            s, plain_loss = best_of(lambda f=plain, m=model0, e=epochs: f(m, train, e, seed), 1)
            plain_s = min(plain_s, s)
            s, ppgen_loss = best_of(lambda f=with_ppgen, m=model0, e=epochs: f(m, train, e, seed), 1)
            ppgen_s = min(ppgen_s, s)
        steps = epochs * (12 if name != "bayesnet" else 1)
        print(
            f"{name:<10}{steps:>7}{1e3 * plain_s:>10.3f}{1e3 * ppgen_s:>10.3f}{ppgen_s / plain_s:>7.2f}"
            f"{plain_loss:>12.3f}{ppgen_loss:>12.3f}"
        )


if __name__ == "__main__":
    main()
