"""Normalizing flows on vectors: RealNVP, MAF, neural spline and planar flows, built from Pyro transforms.

A flow is an invertible map f from data x to a standard normal base z, and the change of variables
gives the exact density, log p(x) = log N(f(x); 0, I) + log|det df/dx|. Every model here is the Pyro
program ``pyro.sample("x", NormalizingFlow(base, steps of f), obs=x)`` (the law of f^{-1}(z), scored in
one fused pass of map and log-determinant, :class:`~ppgen.flows.NormalizingFlow`): one shared base
class, :class:`VectorFlow`, builds f as an :class:`~ppgen.flows.ActNorm` that standardises the data
(set from the first training batch) followed by ``num_layers`` steps of the variant's transform,
with the coordinates reversed between steps. Each variant only says what one step is; with
``conditional=True`` it uses Pyro's conditional transform instead and models p(x | y), the label
entering as a one-hot context. Every step's scale is bounded, so training cannot blow up.

References:
    | Density estimation using Real NVP (Dinh et al., 2017), arXiv:1605.08803
    | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017), arXiv:1705.07057
    | Neural Spline Flows (Durkan et al., 2019), arXiv:1906.04032
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), arXiv:1505.05770
    | Improved Variational Inference with Inverse Autoregressive Flow (Kingma et al., 2016), arXiv:1606.04934
"""

from typing import ClassVar

import networkx as nx
import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, ConditionalDenseNN, DenseNN
from torch import Tensor, nn
from torch.distributions import ComposeTransform

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.flows import (
    ActNorm,
    AutoregressiveSpline,
    BoundedScale,
    ConditionalAutoregressiveSpline,
    NormalizingFlow,
    conditional_invertible_planar,
    invertible_planar,
)

__all__ = ["VectorFlow", "RealNVP", "MAF", "NSF", "PlanarFlow"]


class VectorFlow(GenerativeModel):
    r"""The flow model on vectors (N, D): x = f^{-1}(z), z ~ N(0, I), f = step_L o ... o step_1 o actnorm.

    Subclasses define :meth:`make_step` (one step, forward map data -> base, or its conditional
    version) and set ``fit_defaults``. Everything else (the Pyro program, ``log_prob``, ``sample``,
    conditioning on labels, standardisation) is here.

    Arguments:
        spec: the data spec; continuous vectors, event shape (D,).
        num_layers: the number of steps.
        hidden_dims: the hidden widths of each step's network.
        conditional: model p(x | y) with y a label in [0, spec.num_classes).
    """

    family = "flow"
    density = "exact"
    kinds = ("continuous",)
    objective = "annealed-elbo"
    min_dim: ClassVar[int] = 2

    def __init__(self, spec, num_layers: int = 5, hidden_dims: tuple = (64, 64), conditional: bool = False):
        super().__init__(spec)
        if len(spec.event_shape) != 1:
            raise PPGenError(
                f"{self.name}: expected vector data of event shape (D,), got {tuple(spec.event_shape)}; "
                "flatten images or use 'glow'"
            )
        self.dim = int(spec.event_shape[0])
        if self.dim < self.min_dim:
            raise PPGenError(f"{self.name}: expected at least {self.min_dim} dimensions, got {self.dim}")
        if conditional and not spec.num_classes:
            raise PPGenError(
                f"{self.name}: conditional=True needs labelled data (spec.num_classes), got none"
            )
        self.conditional = conditional
        self.num_layers = num_layers
        self.hidden_dims = list(hidden_dims)
        self.context_dim = spec.num_classes if conditional else 0
        self.register_buffer("base_loc", torch.zeros(self.dim))
        self.register_buffer("base_scale", torch.ones(self.dim))
        self.register_buffer("reverse", torch.arange(self.dim - 1, -1, -1))
        self.steps = nn.ModuleList([ActNorm(self.dim)] + [self.make_step(i) for i in range(num_layers)])

    def make_step(self, i: int) -> nn.Module:
        r"""Step i: a TransformModule whose forward map runs data -> base, or a ConditionalTransformModule."""
        raise NotImplementedError

    # --- the flow -----------------------------------------------------------------------------------
    def context(self, y: Tensor | None, n: int) -> Tensor | None:
        r"""The one-hot context (n, num_classes) of labels y (n,), or None for an unconditional model."""
        y = self.check_labels(y, n)
        return None if y is None else nn.functional.one_hot(y, self.context_dim).to(self.base_loc.dtype)

    def normalizing_steps(self, context: Tensor | None = None) -> list:
        r"""The transforms whose composition is f: data -> base: the steps (conditioned on ``context``)
        with the coordinates reversed between them."""
        parts = []
        for i, step in enumerate(self.steps):
            if i > 1:
                parts.append(T.Permute(self.reverse))
            parts.append(step.condition(context) if isinstance(step, ConditionalTransformModule) else step)
        return parts

    def normalizing_transform(self, context: Tensor | None = None) -> ComposeTransform:
        r"""f: data -> base as one ComposeTransform (for plots and checks; the flow runs the steps itself)."""
        return ComposeTransform(self.normalizing_steps(context))

    def flow(self, context: Tensor | None = None) -> NormalizingFlow:
        r"""The distribution of x: the base N(0, I) pushed through f^{-1}, scored in one fused pass."""
        base = dist.Normal(self.base_loc, self.base_scale, validate_args=False).to_event(1)
        return NormalizingFlow(base, self.normalizing_steps(context))

    # --- the protocol ---------------------------------------------------------------------------------
    def model(self, x=None, y=None):
        n = 1 if x is None else x.shape[0]
        with pyro.plate("data", n):
            return pyro.sample("x", self.flow(self.context(y, n)), obs=x)

    def log_prob(self, x, y=None):
        x = self.check_input(x)
        return self.flow(self.context(y, x.shape[0])).log_prob(x)

    def training_loss(self, x, y=None):
        r"""-sum log p(x): the Pyro program's loss (it has no latent site), without the trace."""
        return -self.flow(self.context(y, x.shape[0])).log_prob(x).sum()

    @torch.no_grad()
    def sample(self, n, y=None):
        return self.flow(self.context(self.labels_or_uniform(n, y), n)).sample((n,))

    def graph(self):
        r"""z -> x: every coordinate of x depends on every base coordinate (dense after two steps)."""
        g = nx.DiGraph()
        zs, xs = [f"z{i}" for i in range(self.dim)], [f"x{i}" for i in range(self.dim)]
        g.add_edges_from((z, x) for z in zs for x in xs)
        if self.conditional:
            g.add_edges_from(("y", x) for x in xs)
        return g


def _autoregressive_net(flow: VectorFlow, param_dims: list[int]) -> nn.Module:
    order = torch.arange(flow.dim)
    if flow.conditional:
        return ConditionalAutoRegressiveNN(
            flow.dim, flow.context_dim, flow.hidden_dims, param_dims=param_dims, permutation=order
        )
    return AutoRegressiveNN(flow.dim, flow.hidden_dims, param_dims=param_dims, permutation=order)


# Training defaults of the affine flows, measured on rings8 (modes of std 0.02) and checkerboard: Adam at
# 3e-3 on batches of 512, decayed by 0.989 per epoch for 450 epochs, and Gaussian noise on the data of 0.2
# data standard deviations, decayed by 0.98 per epoch (a continuation from a smooth density to the sharp
# one; see ppgen.inference.annealed_elbo). With the former 10-step schedules and no noise, rings8's KL gap
# was 0.62-0.85 nats; with these defaults, seed 0: realnvp 0.147, maf 0.157.
AFFINE_FIT_DEFAULTS = {
    "epochs": 450,
    "batch_size": 512,
    "lr": 3e-3,
    "lr_decay": 0.989,
    "min_lr_fraction": 0.005,
    "clip_norm": 10.0,
    "data_noise": 0.2,
    "noise_decay": 0.98,
}


@register
class RealNVP(VectorFlow):
    r"""RealNVP: affine coupling steps, z_b = x_b exp(s(x_a)) + t(x_a), with the halves swapped between steps.

    Pyro's ``AffineCoupling`` (``ConditionalAffineCoupling`` with ``conditional=True``), the
    log-scale softly bounded to [-2.5, 2.5] (:class:`~ppgen.flows.BoundedScale`). Density and
    sampling are both one pass.

    Example:
        >>> import ppgen
        >>> m = ppgen.create("realnvp", ppgen.data.DataSpec("continuous", (2,)))
        >>> m.sample(3).shape
        torch.Size([3, 2])
    """

    name = "realnvp"
    fit_defaults = AFFINE_FIT_DEFAULTS

    def __init__(self, spec, num_layers: int = 16, hidden_dims: tuple = (64, 64), conditional: bool = False):
        super().__init__(spec, num_layers, hidden_dims, conditional)

    def make_step(self, i):
        split = self.dim // 2
        out = [self.dim - split, self.dim - split]
        if self.conditional:
            return T.ConditionalAffineCoupling(
                split, BoundedScale(ConditionalDenseNN(split, self.context_dim, self.hidden_dims, out))
            )
        return T.AffineCoupling(split, BoundedScale(DenseNN(split, self.hidden_dims, out)))


@register
class MAF(VectorFlow):
    r"""Masked autoregressive flow: z_i = mu_i(x_<i) + exp(s_i(x_<i)) x_i, the order reversed between steps.

    Pyro's ``AffineAutoregressive`` run data -> base (density in one pass, sampling in D passes),
    the log-scale softly bounded to [-2.5, 2.5] (:class:`~ppgen.flows.BoundedScale`).
    """

    name = "maf"
    fit_defaults = AFFINE_FIT_DEFAULTS

    def __init__(self, spec, num_layers: int = 16, hidden_dims: tuple = (64, 64), conditional: bool = False):
        super().__init__(spec, num_layers, hidden_dims, conditional)

    def make_step(self, i):
        net = BoundedScale(_autoregressive_net(self, [1, 1]))
        if self.conditional:
            return T.ConditionalAffineAutoregressive(net)
        return T.AffineAutoregressive(net)


@register
class NSF(VectorFlow):
    r"""Neural spline flow: monotone rational-quadratic splines whose knots are autoregressive in x.

    :class:`~ppgen.flows.AutoregressiveSpline` (Pyro's ``SplineAutoregressive(order="quadratic")``
    parameterization with a fused log-determinant; ``ConditionalAutoregressiveSpline`` with
    ``conditional=True``), run data -> base; inside [-bound, bound] each coordinate goes through
    a spline of ``count_bins`` bins, outside it the map is the identity (linear tails). Slopes are
    softplus-bounded, so the map is smooth and cannot blow up.

    Arguments:
        count_bins: the number of spline bins.
        bound: the half-width of the spline's interval (inputs are standardised first).
    """

    name = "nsf"
    fit_defaults = {"epochs": 100, "batch_size": 256, "lr": 2e-3, "lr_decay": 0.966, "clip_norm": 10.0}
    # quick mode (benchmarks/quick_presets.py): rings8 validation KL gap 0.278, 8/8 modes, 78% HQ in 23 CPU s
    # (the default schedule stopped at 10 epochs: 0.538)
    quick_presets = {"rings8": {"config": {}, "fit": {"epochs": 16, "lr": 3e-3, "lr_decay": 0.85}}}

    def __init__(
        self,
        spec,
        num_layers: int = 4,
        hidden_dims: tuple = (64, 64),
        conditional: bool = False,
        count_bins: int = 16,
        bound: float = 4.0,
    ):
        self.count_bins, self.bound = count_bins, bound
        super().__init__(spec, num_layers, hidden_dims, conditional)

    def make_step(self, i):
        k = self.count_bins
        net = _autoregressive_net(self, [3 * k - 1])  # widths, heights, inner slopes, packed (Pyro's layout)
        cls = ConditionalAutoregressiveSpline if self.conditional else AutoregressiveSpline
        return cls(self.dim, net, count_bins=k, bound=self.bound)


@register
class PlanarFlow(VectorFlow):
    r"""Planar flow (a teaching model): z = x + u_hat tanh(w.x + b) per step.

    Each step bends space along one direction only, so many steps are needed and the fit is rough;
    it shows how little one step can do. Run data -> base (closed form); sampling inverts each
    step numerically (:class:`~ppgen.flows.InvertiblePlanar`).
    """

    name = "planar"
    min_dim = 1
    fit_defaults = {"epochs": 40, "batch_size": 256, "lr": 5e-3, "lr_decay": 0.95}

    def __init__(self, spec, num_layers: int = 16, hidden_dims: tuple = (32,), conditional: bool = False):
        super().__init__(spec, num_layers, hidden_dims, conditional)

    def make_step(self, i):
        if self.conditional:
            return conditional_invertible_planar(self.dim, self.context_dim, self.hidden_dims)
        return invertible_planar(self.dim)
