"""Importance sampling with a guide as proposal: per-example log weights, IWAE-K estimates of log p(x)
and the importance-weighted (Renyi alpha) training bound, for any Pyro model/guide pair.

The guide is run once inside a vectorizing particle plate (``poutine.trace``) and the model is replayed
against it (``poutine.replay``), so K samples cost one batched pass; K is split into chunks so that
K up to several thousand fits in memory.

References:
    | Importance Weighted Autoencoders (Burda et al., 2015) https://arxiv.org/abs/1509.00519
    | Renyi Divergence Variational Inference (Li & Turner, 2016) https://arxiv.org/abs/1602.02311
"""

import math

import pyro
import torch
from pyro import poutine
from pyro.infer import RenyiELBO
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["log_importance_weights", "log_marginal", "elbo_estimate", "ImportanceWeightedELBO"]

PARTICLES = "importance_particles"


def _per_example(site: dict, plate: str, particle_dim: int, num_particles: int, batch: int) -> Tensor:
    r"""A site's log-probability reduced to (K, B): sums every plate but ``plate`` and the particles."""
    lp = site["log_prob"]
    frames = {f.name: f.dim for f in site["cond_indep_stack"]}
    if plate not in frames:
        raise PPGenError(
            f"site {site['name']!r} lies outside the plate {plate!r}; "
            "per-example importance weights need every site inside it"
        )
    keep = {particle_dim, frames[plate]}
    while lp.dim() < -min(keep):
        lp = lp.unsqueeze(0)
    other = [d for d in range(-lp.dim(), 0) if d not in keep]
    if other:
        lp = lp.sum(other, keepdim=True)
    return lp.reshape(lp.shape[particle_dim], lp.shape[frames[plate]]).expand(num_particles, batch)


def _one_chunk(
    model, guide, args, kwargs, k: int, plate: str, max_plate_nesting: int, sites, reparameterized: bool
):
    particle_dim = -max_plate_nesting - 1
    vec_guide = pyro.plate(PARTICLES, k, dim=particle_dim)(guide)
    vec_model = pyro.plate(PARTICLES, k, dim=particle_dim)(model)
    guide_trace = poutine.trace(vec_guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(vec_model, trace=guide_trace)).get_trace(*args, **kwargs)
    if reparameterized:
        for name, site in guide_trace.nodes.items():
            if (
                site["type"] == "sample"
                and not site_is_subsample(site)
                and not site["is_observed"]
                and not site["fn"].has_rsample
            ):
                raise NotImplementedError(
                    f"guide site {name!r} is not reparameterized; the importance-weighted bound needs rsample"
                )
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    batch = None
    log_w = 0.0
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if batch is None:
                frames = {f.name: f.size for f in site["cond_indep_stack"]}
                if plate not in frames:
                    raise PPGenError(
                        f"site {name!r} lies outside the plate {plate!r}; "
                        "per-example importance weights need every site inside it"
                    )
                batch = frames[plate]
            log_w = log_w + sign * _per_example(site, plate, particle_dim, k, batch)
    values = {s: guide_trace.nodes[s]["value"] for s in sites}
    return log_w, values


def log_importance_weights(
    model,
    guide,
    *args,
    num_samples: int = 1000,
    plate: str = "data",
    max_plate_nesting: int = 1,
    max_rows: int = 32768,
    sites: tuple = (),
    reparameterized: bool = False,
    **kwargs,
) -> tuple[Tensor, dict]:
    r"""log w_kb = log p(x_b, z_kb) - log q(z_kb | x_b) for K draws z_kb ~ q(z | x_b) from the guide.

    Arguments:
        model: a Pyro program whose sample sites (latent and observed) all lie in the plate ``plate``.
        guide: its guide, over the latent sites of ``model``, in the same plate.
        args, kwargs: the arguments of ``model`` and ``guide`` (e.g. ``x, y``).
        num_samples: K, the number of draws per example.
        plate: the name of the per-example plate.
        max_plate_nesting: the number of plates the model nests (the particles go one dimension further left).
        max_rows: K is processed in chunks of ``max(1, max_rows // B)`` draws (bounds memory).
        sites: names of guide sites whose drawn values are also returned, each (K, B, *event).
        reparameterized: raise if a guide site cannot be reparameterized (for differentiable bounds).

    Returns:
        ``(log_w, values)``: log weights (K, B) and a dict of the requested draws.
    """
    if num_samples < 1:
        raise PPGenError(f"num_samples must be a positive integer, got {num_samples}")
    first = args[0] if args else None
    batch = first.shape[0] if isinstance(first, Tensor) and first.ndim else 1
    chunk = max(1, min(num_samples, max_rows // max(batch, 1)))
    parts, values = [], {s: [] for s in sites}
    done = 0
    while done < num_samples:
        k = min(chunk, num_samples - done)
        log_w, vals = _one_chunk(
            model, guide, args, kwargs, k, plate, max_plate_nesting, sites, reparameterized
        )
        parts.append(log_w)
        for s in sites:
            values[s].append(vals[s])
        done += k
    return torch.cat(parts, dim=0), {s: torch.cat(v, dim=0) for s, v in values.items()}


def log_marginal(model, guide, *args, num_samples: int = 1000, **kwargs) -> Tensor:
    r"""The IWAE-K estimate of log p(x) per example: log (1/K) sum_k w_k, (B,) nats.

    Its expectation is a lower bound on log p(x) that increases with K and converges to log p(x)
    (Burda et al., 2015). Any latent sites work, of any names, shapes and supports, as long as each lies
    in the per-example plate ``plate`` (other plates inside it are summed over). Keyword arguments as in
    :func:`log_importance_weights`.

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> def model(x):  # z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2)
        ...     with pyro.plate("data", x.shape[0]):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0]), 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def guide(x):  # the exact posterior N(x / 2, 1 / 2): every weight is p(x)
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("z", dist.Normal(x / 2, 0.5**0.5))
        >>> x = torch.tensor([0.0, 1.0])
        >>> exact = dist.Normal(0.0, 2**0.5).log_prob(x)
        >>> bool(torch.allclose(log_marginal(model, guide, x, num_samples=10), exact))
        True
    """
    log_w, _ = log_importance_weights(model, guide, *args, num_samples=num_samples, **kwargs)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def elbo_estimate(model, guide, *args, num_samples: int = 1, **kwargs) -> Tensor:
    r"""The Monte Carlo ELBO per example, mean_k log w_k, (B,) nats (unbiased for
    E_q[log p(x, z) - log q(z | x)])."""
    log_w, _ = log_importance_weights(model, guide, *args, num_samples=num_samples, **kwargs)
    return log_w.mean(dim=0)


class ImportanceWeightedELBO(RenyiELBO):
    r"""Pyro's :class:`~pyro.infer.RenyiELBO` with a ``differentiable_loss``, so that a torch optimizer
    can drive it (Pyro's own ``loss_and_grads`` only reaches ``pyro.param`` sites).

    The loss is -sum_b 1/(1-alpha) log (1/K) sum_k w_kb^(1-alpha); alpha = 0 is the IWAE bound with K
    particles. Every guide site must be reparameterized (as in Pyro's implementation for alpha != 1).

    Arguments:
        alpha: the Renyi order (0 = IWAE; not 1).
        num_particles: K.
        max_plate_nesting: the number of plates the model nests (1 for a "data" plate).
        plate: the name of the per-example plate.
    """

    def __init__(
        self,
        alpha: float = 0.0,
        num_particles: int = 5,
        max_plate_nesting: int = 1,
        plate: str = "data",
        **kwargs,
    ):
        super().__init__(
            alpha=alpha,
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
            **kwargs,
        )
        self.plate = plate
        self.model_plate_nesting = max_plate_nesting  # Pyro adds one for the vectorized particles

    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        log_w, _ = log_importance_weights(
            model,
            guide,
            *args,
            num_samples=self.num_particles,
            plate=self.plate,
            max_plate_nesting=self.model_plate_nesting,
            max_rows=2**62,
            reparameterized=True,
            **kwargs,
        )  # (K, B)
        scaled = (1.0 - self.alpha) * log_w
        bound = (torch.logsumexp(scaled, dim=0) - math.log(self.num_particles)) / (1.0 - self.alpha)
        return -bound.sum()
