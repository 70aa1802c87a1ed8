"""Langevin samplers as reusable functions of a score or an energy: plain, annealed, and SGLD; and a
Metropolis-Hastings jump between modes, which gradient-based chains cannot cross.

Each takes a callable (the model's score or energy), a starting point ``x`` (B, *shape) and step
settings, and returns the end point; ``on_step(step, x)`` sees every state (step 0 is the start),
which is how figures record snapshots. New noise takes its device and dtype from ``x``.

References:
    | Bayesian Learning via Stochastic Gradient Langevin Dynamics (Welling & Teh, 2011)
    | Generative Modeling by Estimating Gradients of the Data Distribution (Song & Ermon, 2019)
    | https://arxiv.org/abs/1907.05600
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["langevin", "annealed_langevin", "sgld", "energy_gradient", "kde_jump"]


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _positive(name: str, value) -> None:
    if not value > 0:
        raise PPGenError(f"{name} must be positive, got {value}")


@torch.no_grad()
def langevin(
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    r"""Unadjusted Langevin dynamics: x <- x + a score(x) + sqrt(2 a) z.

    For small ``a`` and many steps the chain's law approaches p where score = grad log p (with
    a bias of order a: for N(m, v) the stationary variance is v / (1 - a / (2 v))).

    Arguments:
        score: x (B, *shape) -> grad_x log p(x), (B, *shape).
        x: the starting points, (B, *shape).
        steps: the number of updates.
        step_size: a > 0.

    Example:
        >>> x = langevin(lambda x: -x, torch.zeros(2000, 1), steps=300, step_size=0.05)  # N(0, 1)
        >>> abs(float(x.var()) - 1) < 0.2
        True
    """
    _positive("step_size", step_size)
    if on_step:
        on_step(0, x)
    for t in range(1, steps + 1):
        x = x + step_size * score(x) + math.sqrt(2 * step_size) * _noise(x, generator)
        if on_step:
            on_step(t, x)
    return x


@torch.no_grad()
def annealed_langevin(
    score: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigmas: Sequence[float] | Tensor,
    steps_per_sigma: int,
    step_ratio: float,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon, 2019, Algorithm 1) over a decreasing noise ladder.

    At level i, ``steps_per_sigma`` Langevin steps with a_i = step_ratio * sigma_i^2 follow the
    score of the data smoothed at sigma_i; the step size scales with sigma_i^2 so that every level
    moves at the same rate relative to its own noise (step_ratio = eps / sigma_L^2 in the paper).
    With ``denoise`` a last Tweedie step x + sigma_L^2 score(x, sigma_L) removes the remaining noise
    (Jolicoeur-Martineau et al., 2020); it counts as one more step.

    Arguments:
        score: (x (B, *shape), sigma (B,)) -> (B, *shape).
        x: the starting points, (B, *shape), usually sigma_1 * N(0, I).
        sigmas: the ladder, (L,), largest first.
        steps_per_sigma: Langevin steps per level (T).
        step_ratio: a_i / sigma_i^2.
        denoise: end with the Tweedie denoising step.

    Returns:
        The samples, (B, *shape); L * T (+1 with ``denoise``) steps were taken.
    """
    _positive("step_ratio", step_ratio)
    sigmas = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device)
    b = x.shape[0]
    step = 0
    if on_step:
        on_step(0, x)
    for sigma in sigmas:
        s = sigma.expand(b)
        a = step_ratio * float(sigma) ** 2
        for _ in range(steps_per_sigma):
            x = x + a * score(x, s) + math.sqrt(2 * a) * _noise(x, generator)
            step += 1
            if on_step:
                on_step(step, x)
    if denoise:
        s = sigmas[-1].expand(b)
        x = x + float(sigmas[-1]) ** 2 * score(x, s)
        if on_step:
            on_step(step + 1, x)
    return x


def energy_gradient(energy: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    r"""grad_x sum_b E(x_b), (B, *shape), by autograd (with gradients enabled even under no_grad)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x)
    return g


def sgld(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    steps: int,
    step_size: float,
    noise_scale: float | None = None,
    grad_clip: float | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    r"""Stochastic gradient Langevin dynamics on an energy: x <- x - a grad E(x) + s z.

    With s = sqrt(2 a) (the default) this is Langevin dynamics for p ∝ exp(-E); EBM training often
    uses a smaller s (a colder chain), as in Du & Mordatch (2019). The returned tensor is detached.

    Arguments:
        energy: x (B, *shape) -> E(x), (B,).
        x: the starting points, (B, *shape).
        steps: the number of updates.
        step_size: a > 0.
        noise_scale: s >= 0; None for sqrt(2 a).
        grad_clip: clamp each gradient entry to [-grad_clip, grad_clip] (None: no clamp).
    """
    _positive("step_size", step_size)
    s = math.sqrt(2 * step_size) if noise_scale is None else noise_scale
    x = x.detach()
    if on_step:
        on_step(0, x)
    for t in range(1, steps + 1):
        g = energy_gradient(energy, x)
        if grad_clip is not None:
            g = g.clamp(-grad_clip, grad_clip)
        x = x - step_size * g + s * _noise(x, generator)
        if on_step:
            on_step(t, x)
    return x.detach()


@torch.no_grad()
def kde_jump(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    pool: Tensor,
    bandwidth: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, float]:
    r"""One independence Metropolis-Hastings move for p ∝ exp(-E), proposing from a Gaussian KDE of ``pool``.

    The proposal x' = pool[j] + bandwidth * z (j uniform) has density q, a kernel density estimate
    of the pool; x' is accepted with probability min(1, exp(E(x) - E(x')) q(x) / q(x')). The move
    leaves p invariant for a fixed pool, and it lets a chain jump between modes that Langevin
    steps never cross: chains in a shallow mode migrate to deeper ones, so the share of chains in
    each mode follows exp(-E) and not the size of the basins they started in.

    Arguments:
        energy: x (B, *shape) -> E(x), (B,).
        x: the current states, (B, *shape).
        pool: states to propose around, (M, *shape) (e.g. a replay buffer).
        bandwidth: the kernel's standard deviation.

    Returns:
        The new states (B, *shape) and the acceptance rate.
    """
    _positive("bandwidth", bandwidth)
    b = x.shape[0]
    flat_pool = pool.reshape(pool.shape[0], -1).to(x.dtype)
    j = torch.randint(pool.shape[0], (b,), generator=generator, device=pool.device).to(x.device)
    proposal = (flat_pool[j] + bandwidth * _noise(flat_pool[j], generator)).reshape(x.shape)

    pool_sq = flat_pool.pow(2).sum(1)  # (M,)

    def log_q(y):  # up to a constant that cancels in the ratio
        y = y.reshape(b, -1)
        d2 = (y.pow(2).sum(1, keepdim=True) + pool_sq - 2 * y @ flat_pool.T).clamp_min(0)  # (B, M)
        return torch.logsumexp(-0.5 * d2 / bandwidth**2, dim=1)

    log_alpha = energy(x) - energy(proposal) + log_q(x) - log_q(proposal)
    u = torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
    accept = u.log() < log_alpha
    mask = accept.reshape(b, *([1] * (x.ndim - 1)))
    return torch.where(mask, proposal, x), float(accept.double().mean())
