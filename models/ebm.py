"""An energy-based model p(x) = exp(-E(x)) / Z, trained by contrastive divergence, sampled by SGLD.

References:
    | Implicit Generation and Generalization in Energy-Based Models (Du & Mordatch, 2019)
    | https://arxiv.org/abs/1903.08689
    | On the Anatomy of MCMC-Based Maximum Likelihood Learning of Energy-Based Models (Nijkamp et al., 2020)
    | https://arxiv.org/abs/1903.12370
"""

import math

import torch
from torch import Tensor

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.estimators.langevin import energy_gradient, kde_jump, sgld
from ppgen.models.score import ChainSampledModel
from ppgen.nn.energy import EnergyNet

__all__ = ["EBM"]


@register
class EBM(ChainSampledModel):
    r"""An energy network E_theta; ``log_prob`` returns the unnormalized -E(x) = log p(x) + log Z.

    The Pyro program observes site "x" from a :class:`~ppgen.likelihoods.SampledDistribution`
    whose ``sample`` runs SGLD on E from uniform noise over the data's box, then rounds of
    Metropolis-Hastings jumps proposed from the chains' own kernel density estimate (a resample-move
    step that moves chains between modes by their depth), and whose ``log_prob`` is -E(x). Training is
    persistent contrastive divergence with a replay buffer
    (``ppgen.inference.contrastive``, objective "contrastive"). On 2-D continuous data
    ``evaluation_log_prob`` is the exact log p(x) = -E(x) - log Z with log Z by quadrature on a
    ``quadrature_points``^2 midpoint grid over the range of the training data widened by
    ``margin`` on each side (the mass outside it is neglected; the network's confining term keeps
    it small); for other data it returns None.

    Arguments:
        spec: the data spec.
        hidden: the energy network's width.
        layers: its number of hidden layers.
        tau: the width of its confining Gaussian (standardized units).
        fourier: octaves of Fourier input features (default 0: on rings8, 6 octaves gave sharper
            samples, 33% high-quality against 7%, but spurious deep wells that no chain visits, and a
            quadrature NLL of 17.2 nats against 0.32).
        energy_scale: the fixed factor on the network's output (see :class:`~ppgen.nn.energy.EnergyNet`).
        step_size: the SGLD step a on the standardized data.
        noise_scale: the SGLD noise s; None for sqrt(2 a), which makes SGLD a Langevin chain for
            exp(-E) itself, so that the density that contrastive divergence fits is the one reported.
            (A smaller s, as in Du & Mordatch, samples exp(-E / T) with T = s^2 / (2 a) instead;
            ``energy_scale`` = 1 / T with s = sqrt(2 a) is the same chain with a consistent density.)
        grad_clip: clamp of the energy gradient's entries in SGLD.
        train_steps: SGLD steps per negative batch in training.
        jump_bandwidth: the kernel width of the Metropolis-Hastings jumps between modes (standardized
            units; see :func:`~ppgen.estimators.langevin.kde_jump`); None for no jumps.
        sample_steps: SGLD steps from noise in :meth:`sample`.
        sample_jumps: rounds of (a jump proposed from the population's own KDE, then
            ``jump_steps`` SGLD steps) after them, so that the chains' share of each mode follows exp(-E).
        jump_steps: SGLD steps after each jump.
        quadrature_points: grid points per axis for log Z (2-D data).
        margin: the fraction of the data range added on each side of the quadrature box.

    Example:
        >>> import ppgen, torch
        >>> data = ppgen.data.from_tensor(torch.randn(64, 2), kind="continuous")
        >>> m = ppgen.create("ebm", data, hidden=16, sample_steps=5, train_steps=2)
        >>> _ = ppgen.fit(m, data, steps=2, progress=False)
        >>> m.sample(5).shape
        torch.Size([5, 2])
    """

    name = "ebm"
    family = "energy"
    density = "unnormalized"
    objective = "contrastive"
    fit_defaults = {"epochs": 60, "batch_size": 256, "lr": 1e-3}
    # quick mode (benchmarks/quick_presets.py): rings8 validation 7/8 modes for seeds 0 and 1 (1.3-2.2 %
    # high-quality, KL gap of the quadrature NLL 4.8-4.9) in 41-44 CPU s of training, 11-12 of sampling, with
    # 30 rounds of jumps of bandwidth 0.1 (30 rounds of 0.05: 8/8 and 6/8; of 0.2: 7/8 and 6/8; the default
    # 10 rounds of 0.05 gave 8/8 on validation but 4/8 on test); on the test split 3/8 (45 CPU s), so not in
    # the demo; on digits 10 epochs gave FD-digits 387
    quick_presets = {"rings8": {"config": {"sample_jumps": 30, "jump_bandwidth": 0.1}, "fit": {"epochs": 5}}}
    sampling_reason = "no log density"

    def __init__(
        self,
        spec,
        hidden: int = 64,
        layers: int = 3,
        tau: float | None = 4.0,
        fourier: int = 0,
        energy_scale: float = 20.0,
        step_size: float = 5e-5,
        noise_scale: float | None = None,
        grad_clip: float | None = 1000.0,
        train_steps: int = 20,
        jump_bandwidth: float | None = 0.05,
        sample_steps: int = 300,
        sample_jumps: int = 10,
        jump_steps: int = 10,
        quadrature_points: int = 512,
        margin: float = 0.2,
    ):
        super().__init__(spec)
        self.net = EnergyNet(spec.dim, hidden, layers, tau, energy_scale, fourier)
        self.sampler = {
            "step_size": step_size,
            "noise_scale": noise_scale,
            "grad_clip": grad_clip,
            "train_steps": train_steps,
            "jump_bandwidth": jump_bandwidth,
        }
        self.sample_steps = sample_steps
        self.sample_jumps = sample_jumps if jump_bandwidth else 0
        self.jump_steps = jump_steps
        self.quadrature_points = quadrature_points
        self.margin = margin
        self._log_z_cache = (None, None)

    # --- energies -----------------------------------------------------------------------------
    def energy_u(self, u: Tensor) -> Tensor:
        r"""E in the standardized space. u: (B, *event_shape) -> (B,)."""
        return self.net(u)

    def energy(self, x: Tensor) -> Tensor:
        r"""E(x) in data space. x: (B, *event_shape) -> (B,)."""
        return self.energy_u(self.standardize(x))

    def unnormalized_log_prob(self, x: Tensor) -> Tensor:
        return -self.energy(x)

    def log_prob(self, x, y=None):
        r"""The unnormalized log density -E(x) = log p(x) + log Z, (B,)."""
        return -self.energy(self.check_input(x))

    def score(self, x: Tensor, sigma: float | None = None) -> Tensor:
        r"""-grad_x E(x) in data space, (B, *event_shape); ``sigma`` is ignored (an EBM has no noise
        level)."""
        return -energy_gradient(self.energy, x)

    # --- the partition function ---------------------------------------------------------------
    @property
    def has_quadrature(self) -> bool:
        return self.spec.kind == "continuous" and self.spec.dim == 2 and bool(self.standardize.ready)

    def quadrature_grid(self) -> tuple[Tensor, float]:
        r"""Midpoints of the quadrature grid in data space, (P^2, 2), and the area of one cell."""
        lo, hi = self.standardize.box(self.margin)
        lo, hi = self.standardize.inverse(lo, snap=False), self.standardize.inverse(hi, snap=False)
        p = self.quadrature_points
        axes = [
            lo[i] + (hi[i] - lo[i]) * (torch.arange(p, device=lo.device, dtype=lo.dtype) + 0.5) / p
            for i in range(2)
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="xy"), dim=-1).reshape(-1, 2)
        cell = float((hi[0] - lo[0]) * (hi[1] - lo[1])) / p**2
        return grid, cell

    @torch.no_grad()
    def log_partition(self) -> float:
        r"""log Z = log of the integral of exp(-E) over the quadrature box (2-D continuous data), cached
        until the parameters change."""
        if not self.has_quadrature:
            raise PPGenError(
                f"{self.name}: log Z by quadrature needs fitted 2-D continuous data, "
                f"not {self.spec.kind} {self.spec.event_shape}"
            )
        key = (
            tuple(t._version for t in self.state_dict(keep_vars=True).values()),
            self.quadrature_points,
            self.margin,
            str(self.device),
        )
        if self._log_z_cache[0] != key:
            grid, cell = self.quadrature_grid()
            neg = torch.cat([-self.energy(chunk).double() for chunk in grid.split(65536)])
            self._log_z_cache = (key, float(torch.logsumexp(neg, 0)) + math.log(cell))
        return self._log_z_cache[1]

    @torch.no_grad()
    def evaluation_log_prob(self, x, y=None, num_samples=1000):
        if not self.has_quadrature:
            return None
        return self.log_prob(x) - self.log_partition(), "quadrature"

    # --- sampling -------------------------------------------------------------------------------
    def noise_u(self, n: int, like: Tensor | None = None) -> Tensor:
        r"""n points uniform over the data's box in the standardized space, (n, *event_shape)."""
        lo, hi = self.standardize.box(0.1)
        u = torch.rand(n, *self.spec.event_shape, device=lo.device, dtype=lo.dtype)
        return lo + (hi - lo) * u

    @property
    def num_sampling_steps(self) -> int:
        return self.sample_steps + self.sample_jumps * self.jump_steps

    def sample_u(self, n: int, on_step=None) -> Tensor:
        cfg = self.sampler

        def run(x, steps, offset):
            shifted = None if on_step is None else (lambda t, u: t > 0 and on_step(offset + t, u))
            return sgld(
                self.energy_u,
                x,
                steps,
                cfg["step_size"],
                cfg["noise_scale"],
                cfg["grad_clip"],
                on_step=shifted,
            )

        x = self.noise_u(n)
        if on_step is not None:
            on_step(0, x)
        x = run(x, self.sample_steps, 0)
        for r in range(self.sample_jumps):
            x, _ = kde_jump(self.energy_u, x, x.clone(), cfg["jump_bandwidth"])
            x = run(x, self.jump_steps, self.sample_steps + r * self.jump_steps)
        return x
