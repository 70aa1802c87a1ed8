"""Exact per-example log p(x) of a Pyro program whose latent sites are all discrete and finite.

Every latent site is enumerated in parallel (``poutine.enum`` with ``config_enumerate``), and the factors
of the trace are contracted by Pyro's message passing (``pyro.ops.contract``, the machinery of
``TraceEnum_ELBO``) down to the per-example plate: the sum over latent states runs in log space, the
product over any other plate is a sum of logs. Chains and trees of discrete sites are fine.

References:
    | Tensor Variable Elimination for Plated Factor Graphs (Obermeyer et al., 2019) https://arxiv.org/abs/1902.03210
"""

from collections import OrderedDict

from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.traceenum_elbo import _find_ordinal
from pyro.ops.contract import contract_to_tensor
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["enumerated_log_prob"]


def enumerated_log_prob(model, *args, plate: str = "data", max_plate_nesting: int = 1, **kwargs) -> Tensor:
    r"""log p(x_b) = log sum_z p(x_b, z), (B,) nats, for a program whose latent sites are discrete and finite.

    Arguments:
        model: a Pyro program observing each example inside the plate ``plate``; its latent sites must
            have enumerable supports (Bernoulli, Categorical, ...).
        args, kwargs: the arguments of ``model`` (e.g. ``x``).
        plate: the name of the per-example plate.
        max_plate_nesting: the number of plates the program nests (enumeration uses the dims left of them).

    Returns:
        (B,) the exact log-likelihood of each example.

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> def model(x):
        ...     with pyro.plate("data", x.shape[0]):
        ...         z = pyro.sample("z", dist.Bernoulli(0.5))
        ...         pyro.sample("x", dist.Normal(2 * z, 1.0), obs=x)
        >>> lp = enumerated_log_prob(model, torch.zeros(3))
        >>> components = dist.Normal(torch.tensor([0.0, 2.0]), 1.0).log_prob(torch.tensor(0.0))
        >>> expected = torch.logsumexp(components, 0)
        >>> expected = expected - torch.tensor(2.0).log()
        >>> bool(torch.allclose(lp, expected.expand(3), atol=1e-4))
        True
    """
    enum_model = poutine.enum(
        config_enumerate(model, default="parallel"), first_available_dim=-1 - max_plate_nesting
    )
    trace = prune_subsample_sites(poutine.trace(enum_model).get_trace(*args, **kwargs))
    trace.compute_log_prob()
    trace.pack_tensors()
    if plate not in trace.plate_to_symbol:
        raise PPGenError(f"the program has no plate {plate!r} to report per-example log-likelihoods in")
    tree, sum_dims = OrderedDict(), set()
    for site in trace.nodes.values():
        if site["type"] != "sample":
            continue
        if not site["is_observed"] and site["infer"].get("_enumerate_dim") is None:
            raise PPGenError(
                f"latent site {site['name']!r} cannot be enumerated "
                f"({type(site['fn']).__name__} has no finite support)"
            )
        log_prob = site["packed"]["unscaled_log_prob"]
        tree.setdefault(_find_ordinal(trace, site), []).append(log_prob)
        if site["infer"].get("_enumerate_dim") is not None:
            sum_dims.update(log_prob._pyro_dims)
    sum_dims -= set(trace.plate_to_symbol.values())
    symbol = trace.plate_to_symbol[plate]
    result = contract_to_tensor(tree, sum_dims, target_ordinal=frozenset({symbol}))
    if symbol not in result._pyro_dims:  # no site depended on the plate: one value for every example
        return result.reshape(()).expand(args[0].shape[0] if args else 1)
    return result.reshape(-1) if result.dim() else result.reshape(1)
