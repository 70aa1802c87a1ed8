"""Diffusion: DDPM as a Pyro program -- the reverse process is the model, the forward process the guide.

The model p(x_{0:T}) = N(x_T; 0, I) prod_t N(x_{t-1}; mu_theta(x_t, t), sigma_t^2 I) ends with a
likelihood p(x_0 | x_1) that fits the data kind; the guide is the fixed forward process
q(x_{1:T} | x_0) = prod_t N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I). Pyro's ELBO of the pair is the
DDPM variational bound; ``log_prob`` computes the same bound with the closed-form per-step KLs.

References:
    | Denoising Diffusion Probabilistic Models (Ho et al., 2020) https://arxiv.org/abs/2006.11239
    | Improved Denoising Diffusion Probabilistic Models (Nichol & Dhariwal, 2021) https://arxiv.org/abs/2102.09672
    | Denoising Diffusion Implicit Models (Song et al., 2021) https://arxiv.org/abs/2010.02502
"""

import math
from collections import deque

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.likelihoods import DiscretizedGaussian
from ppgen.nn.denoiser import denoiser
from ppgen.nn.standardize import Standardize

__all__ = ["DDPM", "Schedule", "linear_betas", "cosine_betas", "extract", "SCHEDULES"]


def linear_betas(T: int) -> Tensor:
    r"""Ho et al.'s linear schedule beta_t in [1e-4, 0.02] for T = 1000, rescaled by 1000 / T (clipped
    at 0.999). (T,) float64."""
    scale = 1000.0 / T
    return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999)


def cosine_betas(T: int, s: float = 0.008) -> Tensor:
    r"""Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos^2((t/T + s) / (1 + s) pi/2), betas
    clipped at 0.999."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def extract(a: Tensor, t: Tensor, shape: torch.Size) -> Tensor:
    r"""a[t] reshaped to broadcast over a batch of this shape.

    Arguments:
        a: (T + 1,) a per-step coefficient, indexed by the time step (entry 0 is t = 0).
        t: (B,) integer time steps.
        shape: the batch's shape (B, *event_shape).

    Returns:
        (B, 1, ..., 1) with ``len(shape)`` dimensions.
    """
    return a.gather(0, t).reshape(t.shape[0], *([1] * (len(shape) - 1)))


class Schedule(nn.Module):
    r"""The coefficients of a noise schedule, computed in float64 and kept as float32 buffers.

    Every buffer has T + 1 entries indexed by the time step t = 0, ..., T (t = 0 is the data).

    Arguments:
        betas: (T,) the forward variances beta_1, ..., beta_T, float64.
        variance: the reverse variances sigma_t^2: "beta" (beta_t, exact for data N(0, I)) or
            "posterior" (beta~_t of q(x_{t-1} | x_t, x_0), exact when x_0 is a function of x_t;
            sigma_1^2 = beta~_2 as in Ho et al.'s code).
    """

    def __init__(self, betas: Tensor, variance: str = "beta"):
        super().__init__()
        b = torch.cat([betas.new_zeros(1), betas.double()])  # (T+1,)
        alpha = 1 - b
        abar = torch.cumprod(alpha, 0)  # abar_0 = 1
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        post = b * (1 - abar_prev) / (1 - abar).clamp_min(1e-300)  # beta~_t, 0 at t = 0 and 1
        if variance == "beta":
            var = b.clone()
        elif variance == "posterior":
            var = post.clone()
            var[1] = post[2] if len(b) > 2 else b[1]
        else:
            raise PPGenError(f"unknown variance {variance!r}; expected 'beta' or 'posterior'")
        var[0] = 1.0  # unused; keeps logs finite
        # KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) per dimension = kl_const_t + kl_coef_t (eps -
        # eps_theta)^2
        kl_const = 0.5 * ((var / post.clamp_min(1e-300)).log() + post / var - 1)
        kl_coef = 0.5 * b**2 / (alpha * (1 - abar).clamp_min(1e-300)) / var
        kl_const[:2], kl_coef[:2] = 0.0, 0.0
        self.T = len(betas)
        self.variance = variance
        for name, value in {
            "betas": b,
            "alphas_cumprod": abar,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
            "eps_coef": b / (1 - abar).clamp_min(1e-300).sqrt(),  # beta_t / sqrt(1 - abar_t)
            "sqrt_recip_alphas": alpha.rsqrt(),
            "sigmas": var.sqrt(),
            "kl_const": kl_const,
            "kl_coef": kl_coef,
        }.items():
            self.register_buffer(name, value.float())

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        r"""x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise; all (B, *event_shape), t: (B,)."""
        return (
            extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise
        )

    def reverse_mean(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r"""mu(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)."""
        return extract(self.sqrt_recip_alphas, t, xt.shape) * (xt - extract(self.eps_coef, t, xt.shape) * eps)


@register
class DDPM(GenerativeModel):
    r"""A denoising diffusion probabilistic model; ``log_prob`` is its variational bound (nats).

    Data enter the diffusion in a model space (:class:`~ppgen.nn.standardize.Standardize`, shared
    with the score models): binary {0, 1} and grey levels {0, ..., K-1} map to [-1, 1]; continuous
    data are standardized by statistics of the training split (set in :meth:`initialize`), and the
    bound counts the Jacobian.
    The final likelihood p(x_0 | x_1) is a Bernoulli (binary), a discretized Gaussian (grey levels)
    or a Gaussian (continuous) around mu_theta(x_1, 1) with scale sigma_1.

    Arguments:
        spec: the data spec.
        timesteps: T.
        schedule: "linear" or "cosine".
        variance: the fixed reverse variances (see :class:`Schedule`): "posterior" (beta~_t, the
            default: right where x_0 is nearly determined by x_t -- discrete data, tight modes --
            and the sharper ancestral sampler) or "beta" (beta_t: exact for Gaussian data, whose
            bound it makes tight; on rings8 it widens ancestral samples about 1.7x).
        hidden, blocks: the MLP denoiser's width and depth (vectors and tiny images).
        width: the U-Net denoiser's channels (images of at least 4 x 4).
        fourier: the MLP's octaves of Fourier input features (default 6 for D <= 4, else 0).
        architecture: the denoiser, "auto" (an MLP for vectors, a U-Net for images), "mlp" or "conv".

    Example:
        >>> import ppgen, torch
        >>> m = ppgen.create("ddpm", ppgen.data.DataSpec("continuous", (2,)), timesteps=10, hidden=16)
        >>> m.log_prob(torch.zeros(3, 2)).shape, m.sample(4, method="ddim", steps=5).shape
        (torch.Size([3]), torch.Size([4, 2]))
    """

    name = "ddpm"
    family = "diffusion"
    density = "lower-bound"
    objective = "denoising"
    completion = "replacement"
    # ppgen.fit hands back an exponential moving average of the weights (inference/weight_average.py)
    # default: tuned on rings8 validation (benchmarks/diffusion_quality.py, 1 thread, seed 0) to meet the bars
    # (KL gap <= 0.5, >= 7/8 modes, >= 60 % high-quality by DDIM-50) well inside 3 CPU-minutes: an average of
    # 0.995 and a rate that halves every 1,800 steps reach them at epoch 80 (54 training CPU s: 0.488, 8/8,
    # 90 %) and plateau by 160 (107 s: 0.426, 8/8, 94 %; 200 epochs: 0.420). The former default (300 epochs,
    # average 0.999, halving every 4,000 steps) took over 20 CPU-minutes on 2 threads of a loaded machine.
    fit_defaults = {"epochs": 160, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.995, "lr_decay": 0.999615}
    # quick mode (benchmarks/quick_presets.py): rings8 validation KL gap 0.455, 8/8 modes, 98 % high-quality
    # in 57 CPU s: a shorter average (0.995) and a learning rate that halves every 800 steps (0.999134 a
    # step) instead of 4,000 (40 epochs at the former defaults: 0.685; 60 epochs: 0.493; 100 timesteps: 1.04)
    quick_presets = {
        "rings8": {
            "config": {},
            "fit": {"epochs": 80, "ema_decay": 0.995, "lr_decay": 0.999134, "budget_seconds": 300},
        }
    }

    def __init__(
        self,
        spec,
        timesteps: int = 200,
        schedule: str = "linear",
        variance: str = "posterior",
        hidden: int = 128,
        blocks: int = 3,
        width: int = 32,
        fourier: int | None = None,
        architecture: str = "auto",
    ):
        super().__init__(spec)
        if schedule not in SCHEDULES:
            raise PPGenError(f"unknown schedule {schedule!r}; expected one of: {', '.join(SCHEDULES)}")
        if int(timesteps) < 2:
            raise PPGenError(f"ddpm needs timesteps >= 2, got {timesteps}")
        if architecture not in ("auto", "mlp", "conv") or architecture == "conv" and not spec.is_image:
            raise PPGenError(
                f"architecture must be 'auto', 'mlp' or 'conv' (images only), got {architecture!r} "
                f"for event shape {spec.event_shape}"
            )
        self.schedule = Schedule(SCHEDULES[schedule](int(timesteps)), variance)
        self.T = int(timesteps)
        self.net = denoiser(
            spec.event_shape,
            hidden,
            blocks,
            width,
            time_scale=1000.0 / self.T,
            fourier=fourier,
            architecture=architecture,
        )
        self.standardize = Standardize(spec)

    # --- model space ------------------------------------------------------------------------------
    def initialize(self, data) -> None:
        r"""Fits the standardization of continuous data to the training split (once)."""
        self.standardize.fit(data.x)

    def to_model_space(self, x: Tensor) -> Tensor:
        r"""Data (B, *event_shape) -> the diffusion's x_0."""
        return self.standardize(x)

    def from_model_space(self, z: Tensor) -> Tensor:
        r"""The inverse map, as reals (grey levels unrounded)."""
        return self.standardize.inverse(z, snap=False)

    # --- the networks -------------------------------------------------------------------------------
    def eps(self, xt: Tensor, t: Tensor) -> Tensor:
        r"""The predicted noise eps_theta(x_t, t)."""
        return self.net(xt, t)

    def p_mean(self, xt: Tensor, t: Tensor) -> Tensor:
        r"""mu_theta(x_t, t), (B, *event_shape)."""
        return self.schedule.reverse_mean(xt, t, self.eps(xt, t))

    def decoder(self, x1: Tensor) -> dist.TorchDistribution:
        r"""p(x_0 | x_1) in data units: batch (B,), event ``spec.event_shape``."""
        t = torch.ones(x1.shape[0], dtype=torch.long, device=x1.device)
        mean = self.p_mean(x1, t)
        sigma = self.schedule.sigmas[1]
        n = len(self.spec.event_shape)
        if self.spec.kind == "binary":  # the K = 2 discretized Gaussian: P(x = 1) = Phi(mu / sigma)
            z = mean / sigma
            return dist.Bernoulli(logits=torch.special.log_ndtr(z) - torch.special.log_ndtr(-z)).to_event(n)
        if self.spec.base_kind == "categorical":
            return DiscretizedGaussian(mean, sigma.expand_as(mean), self.spec.num_categories).to_event(n)
        return dist.Normal(self.from_model_space(mean), sigma * self.standardize.scale).to_event(n)

    # --- the Pyro program --------------------------------------------------------------------------
    def model(self, x=None, y=None):
        r"""The reverse process, sites "x_T", ..., "x_1" and the observed "x" (= x_0)."""
        n = 1 if x is None else x.shape[0]
        shape = (n, *self.spec.event_shape)
        k = len(self.spec.event_shape)
        z = self.schedule.betas.new_zeros(shape)
        with pyro.plate("data", n):
            z = pyro.sample(f"x_{self.T}", dist.Normal(z, torch.ones_like(z)).to_event(k))
            for t in range(self.T, 1, -1):
                tt = torch.full((n,), t, dtype=torch.long, device=z.device)
                z = pyro.sample(
                    f"x_{t - 1}",
                    dist.Normal(
                        self.p_mean(z, tt), extract(self.schedule.sigmas, tt, shape).expand(shape)
                    ).to_event(k),
                )
            return pyro.sample("x", self.decoder(z), obs=x)

    def guide(self, x=None, y=None):
        r"""The fixed forward process q(x_{1:T} | x_0): no parameters."""
        if x is None:
            raise PPGenError("the ddpm guide q(x_{1:T} | x_0) needs the data x")
        s = self.schedule
        k = len(self.spec.event_shape)
        z = self.to_model_space(x)
        with pyro.plate("data", x.shape[0]):
            for t in range(1, self.T + 1):
                z = pyro.sample(
                    f"x_{t}",
                    dist.Normal((1 - s.betas[t]).sqrt() * z, s.betas[t].sqrt().expand_as(z)).to_event(k),
                )

    # --- the bound ----------------------------------------------------------------------------------
    def bound_terms(self, x: Tensor, t: Tensor) -> Tensor:
        r"""L_{t-1} of each example at its own step t, one draw of x_t: (B,) nats.

        t = 1: -log p(x_0 | x_1); t >= 2: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) in closed form.
        """
        x0 = self.to_model_space(x)
        noise = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, noise)
        s = self.schedule
        err = (noise - self.eps(xt, t)) ** 2
        terms = (extract(s.kl_const, t, x0.shape) + extract(s.kl_coef, t, x0.shape) * err).flatten(1).sum(1)
        first = t == 1
        if first.any():
            nll0 = -self.decoder(xt[first]).log_prob(x[first])
            terms = terms.index_put((first,), nll0)
        return terms

    def prior_kl(self, x: Tensor) -> Tensor:
        r"""KL(q(x_T | x_0) || N(0, I)): (B,) nats."""
        abar = self.schedule.alphas_cumprod[-1]
        x0 = self.to_model_space(x)
        return 0.5 * (abar * x0**2 - abar - torch.log1p(-abar)).flatten(1).sum(1)

    def log_prob(self, x: Tensor, y: Tensor | None = None, rows: int = 4096) -> Tensor:
        r"""The variational bound L(x) <= log p(x), summed over every step (one draw of x_t per step).

        Arguments:
            x: (B, *event_shape).
            rows: how many (example, step) pairs go through the network at once.

        Returns:
            (B,) nats: log p(x_0 | x_1) - sum_{t>=2} KL_t - KL(q(x_T | x_0) || p(x_T)).
        """
        x = self.check_input(x)
        B = x.shape[0]
        total = -self.prior_kl(x)
        per = max(1, rows // B)  # steps per pass
        for start in range(1, self.T + 1, per):
            ts = torch.arange(start, min(start + per, self.T + 1), device=x.device)  # (S,)
            xs = x.repeat(len(ts), *([1] * (x.ndim - 1)))  # (S B, ...)
            terms = self.bound_terms(xs, ts.repeat_interleave(B))
            total = total - terms.reshape(len(ts), B).sum(0)
        return total

    def evaluation_log_prob(self, x, y=None, num_samples: int = 1000):
        r"""The bound itself (kind "elbo"); ``num_samples`` is unused."""
        return self.log_prob(x, y), "elbo"

    # --- samplers --------------------------------------------------------------------------------------
    def timesteps_for(self, steps: int | None) -> Tensor:
        r"""The visited steps of a sampler, descending: all T, or S evenly spaced ones from T to 1."""
        steps = self.T if steps is None else int(steps)
        if not 1 <= steps <= self.T:
            raise PPGenError(f"steps must be in [1, {self.T}], got {steps}")
        ts = torch.linspace(self.T, 1, steps, dtype=torch.float64).round().long().unique_consecutive()
        return ts.to(self.schedule.betas.device)

    @torch.no_grad()
    def trajectory(self, n: int, steps: int | None = None, method: str = "ancestral"):
        r"""Yields (t, x_t) along the reverse process in model space, from x_T ~ N(0, I) down to x_0 (t = 0).

        Arguments:
            n: the number of chains.
            steps: ancestral: None only (all T steps); ddim: S, the number of steps (default 50).
            method: "ancestral" (Ho et al.'s Algorithm 2, stochastic, T steps) or "ddim" (eta = 0,
                deterministic).
        """
        if method not in ("ancestral", "ddim"):
            raise PPGenError(f"unknown sampler {method!r}; expected 'ancestral' or 'ddim'")
        if not isinstance(n, int) or n < 1:
            raise PPGenError(f"n must be a positive integer, got {n!r}")
        if method == "ancestral":
            if steps not in (None, self.T):
                raise PPGenError(
                    f"ancestral sampling takes all T = {self.T} steps; use method='ddim' for fewer"
                )
            ts = self.timesteps_for(None)
        else:
            ts = self.timesteps_for(min(50, self.T) if steps is None else steps)
        s = self.schedule
        z = torch.randn((n, *self.spec.event_shape), dtype=s.betas.dtype, device=s.betas.device)
        yield self.T, z
        visits = ts.tolist()
        for t, prev in zip(visits, visits[1:] + [0]):
            tt = torch.full((n,), t, dtype=torch.long, device=z.device)
            eps = self.eps(z, tt)
            if method == "ancestral":  # x_{t-1} ~ N(mu_theta(x_t, t), sigma_t^2), no noise at t = 1
                z = s.reverse_mean(z, tt, eps)
                if t > 1:
                    z = z + s.sigmas[t] * torch.randn_like(z)
            else:  # DDIM, eta = 0: x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps
                x0 = (z - s.sqrt_one_minus_alphas_cumprod[t] * eps) / s.sqrt_alphas_cumprod[t]
                z = s.sqrt_alphas_cumprod[prev] * x0 + s.sqrt_one_minus_alphas_cumprod[prev] * eps
            yield prev, z

    def finish(self, z: Tensor) -> Tensor:
        r"""x_0 in model space -> data: the mode of p(x_0 | x_1) (nearest level for discrete data)."""
        return self.standardize.inverse(z)

    @torch.no_grad()
    def sample(self, n: int, y=None, steps: int | None = None, method: str = "ancestral") -> Tensor:
        r"""n samples (n, *event_shape) by ancestral sampling (T steps) or DDIM (``steps`` S, default 50).

        The last step returns the mode of p(x_0 | x_1) (Ho et al.'s Algorithm 2 adds no noise at t = 1).
        """
        (_, z) = deque(self.trajectory(n, steps, method), maxlen=1)[0]  # the last state only
        return self.finish(z)

    def graph(self) -> nx.DiGraph:
        r"""The Markov chain x_T -> x_{T-1} -> ... -> x_1 -> x."""
        names = [f"x_{t}" for t in range(self.T, 0, -1)] + ["x"]
        g = nx.DiGraph()
        g.add_edges_from(zip(names[:-1], names[1:]))
        return g
