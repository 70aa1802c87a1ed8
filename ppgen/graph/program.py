"""A Bayes net compiled to a Pyro program, and what Pyro does with it: exact queries by enumeration,
conditional samples by ``infer_discrete``, fitting by SVI, and reading the structure of any program.

Every variable is one ``pyro.sample`` site named after it, inside a plate "data" over examples, drawn
from ``Categorical(logits=cpt[row of its parents' values])``, in topological order under
``pyro.markov(history=bandwidth)``. Under ``poutine.enum`` each unobserved site gets a tensor dimension
(recycled once no later variable depends on it), so the trace's log-probability factors are the net's
CPTs as tensors; contracting them in log space (opt_einsum through ``pyro.ops.einsum``, which picks a
variable-elimination order) gives exact marginals and conditionals.

References:
    Koller and Friedman, Probabilistic Graphical Models (2009), ch. 9 (variable elimination).
    Obermeyer et al., Tensor Variable Elimination for Plated Factor Graphs (2019), arXiv:1902.03210.
"""

import functools
from collections import OrderedDict

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from opt_einsum import get_symbol
from pyro import poutine
from pyro.infer import config_enumerate, infer_discrete
from pyro.infer.inspect import get_dependencies
from pyro.ops.contract import contract_to_tensor
from pyro.ops.einsum import contract
from pyro.ops.rings import LogRing
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["program", "sample", "query", "log_marginal", "from_pyro", "fit_svi", "ancestors", "bandwidth"]


def ancestors(bn, names) -> set:
    r"""The variables in ``names`` and all their ancestors (an ancestrally closed set)."""
    out = set(names)
    for v in names:
        out |= nx.ancestors(bn.graph, v)
    return out


def bandwidth(bn, order: list) -> int:
    r"""The largest distance, in ``order``, from a variable back to its earliest parent.

    Under ``pyro.markov(order, history=bandwidth)`` enumeration recycles tensor dimensions: a variable's
    dimension is reused once no later variable depends on it, so a Markov net of order k enumerates in
    k + 1 dimensions whatever its length (torch tensors have at most 64).
    """
    position = {v: i for i, v in enumerate(order)}
    return max(
        (position[v] - min(position[u] for u in bn.parents(v)) for v in order if bn.parents(v)), default=0
    )


def program(
    bn,
    x: Tensor | None = None,
    n: int | None = None,
    evidence: dict | None = None,
    only: set | None = None,
    observed: Tensor | None = None,
) -> dict:
    r"""The Pyro program of a Bayes net; returns {name: value}.

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet`.
        x: (B, n) values to observe at every site (in ``bn.ordering()``), or None to sample.
        n: the plate size when ``x`` is None (default 1).
        evidence: {name: value} sites to observe when ``x`` is None.
        only: an ancestrally closed subset of the variables to include (the rest are summed out trivially).
        observed: (B, n) bool with ``x``: which entries are observed (Pyro's ``obs_mask``); the others are
            latent, to be enumerated or sampled (their values in ``x`` are ignored).
    """
    bn.require_tables()
    if x is not None:
        x = bn.check_values(x)
    size = x.shape[0] if x is not None else (1 if n is None else int(n))
    evidence = bn.check_evidence(evidence)
    values = {}
    order = [v for v in bn.variables if only is None or v in only]
    with pyro.plate("data", size):
        for v in pyro.markov(order, history=bandwidth(bn, order)):
            logits = bn.table_logits(v, [values[u] for u in bn.parents(v)])
            obs = x[:, bn.column[v]] if x is not None else evidence.get(v)
            if obs is not None and obs.ndim == 0:
                obs = obs.expand(size)
            mask = None if observed is None else observed[:, bn.column[v]]
            values[v] = pyro.sample(v, dist.Categorical(logits=logits), obs=obs, obs_mask=mask)
    return values


def _enumerated_trace(model, first_available_dim: int):
    trace = poutine.trace(
        poutine.enum(config_enumerate(model, default="parallel"), first_available_dim=first_available_dim)
    ).get_trace()
    trace.compute_log_prob()
    return trace


@torch.no_grad()
def query(bn, targets, evidence: dict | None = None) -> Tensor:
    r"""Exact p(targets | evidence) by variable elimination over the Pyro program's enumerated trace.

    Only the ancestors of the targets and the evidence enter (the other variables sum to one).

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet`.
        targets: a name or a list of names.
        evidence: {name: int} observed values.

    Returns:
        probabilities shaped (card of each target, in the order given), summing to 1.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    evidence = dict(evidence or {})
    for v in list(targets) + list(evidence):
        bn.check_variable(v)
    if not targets or len(set(targets)) != len(targets) or set(targets) & set(evidence):
        raise PPGenError("query needs distinct targets that are not also evidence")
    for v, value in evidence.items():
        if torch.as_tensor(value).ndim != 0:
            raise PPGenError(f"query evidence must be single values; got {v}={value!r}")
    keep = ancestors(bn, targets + list(evidence))
    trace = _enumerated_trace(
        functools.partial(program, bn, evidence=evidence, only=keep), first_available_dim=-2
    )
    operands, inputs = [], []
    for site in trace.nodes.values():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        f = site["log_prob"]  # (..., 1): the plate of size 1 at dim -1, enumeration dims to its left
        dims = [d for d in range(-f.dim(), -1) if f.shape[d] > 1]
        ids = site["infer"]["_dim_to_id"]  # a recycled dimension means a different variable at each use
        operands.append(f.reshape([f.shape[d] for d in dims]))
        inputs.append("".join(get_symbol(ids[d]) for d in dims))
    output = "".join(
        get_symbol(trace.nodes[v]["infer"]["_dim_to_id"][trace.nodes[v]["infer"]["_enumerate_dim"]])
        for v in targets
    )
    log_joint = contract(",".join(inputs) + "->" + output, *operands, backend="pyro.ops.einsum.torch_log")
    log_z = log_joint.logsumexp(tuple(range(log_joint.dim())))
    if not torch.isfinite(log_z):
        raise PPGenError("the evidence has probability zero under this net")
    return (log_joint - log_z).exp()


def log_marginal(bn, x: Tensor, observed: Tensor) -> Tensor:
    r"""Exact log p(x_o) of each example, the unobserved entries summed out: (B,) nats, differentiable.

    The program runs with Pyro's ``obs_mask`` under ``poutine.enum``: each unobserved entry becomes an
    enumerated site, and the trace's factors are contracted in log space per example (the plate "data"
    kept), as ``TraceEnum_ELBO`` does for the sum. An enumerated site enters with its unmasked log
    probability (for examples where it is observed its values sum to one), every other site masked.

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet` (dense tables).
        x: (B, n) values in ``bn.ordering()``; entries where ``observed`` is False are ignored.
        observed: (B, n) bool.
    """
    filled = torch.where(observed, x, torch.zeros_like(x))
    model = config_enumerate(functools.partial(program, bn, x=filled, observed=observed), default="parallel")
    trace = poutine.trace(poutine.enum(model, first_available_dim=-2)).get_trace()
    trace.compute_log_prob()
    trace.pack_tensors()
    factors, sum_dims = OrderedDict(), set()
    for site in trace.nodes.values():
        if site["type"] != "sample" or site_is_subsample(site) or site["infer"].get("_deterministic"):
            continue
        enumerated = site["infer"].get("_enumerate_dim") is not None
        term = site["packed"]["unscaled_log_prob" if enumerated else "log_prob"]
        ordinal = frozenset(trace.plate_to_symbol[f.name] for f in site["cond_indep_stack"] if f.vectorized)
        factors.setdefault(ordinal, []).append(term)
        if enumerated:
            sum_dims.update(d for d in term._pyro_dims if d not in trace.plate_to_symbol.values())
    plate = frozenset(trace.plate_to_symbol.values())
    ring = LogRing(dim_to_size={d: x.shape[0] for d in plate})  # a plate of one is packed away
    return contract_to_tensor(factors, sum_dims, target_ordinal=plate, ring=ring).expand(x.shape[0])


@torch.no_grad()
def sample(bn, n: int, evidence: dict | None = None) -> Tensor:
    r"""n samples (n, num variables), long: ancestral sampling, with the evidence's ancestors drawn
    from their exact posterior by ``infer_discrete`` (forward filtering, backward sampling)."""
    bn.require_tables()
    if not isinstance(n, int) or n < 1:
        raise PPGenError(f"the number of samples must be a positive int, got {n!r}")
    values = {}
    if evidence:
        ev = bn.check_evidence(evidence)
        keep = ancestors(bn, list(ev))
        model = config_enumerate(
            functools.partial(program, bn, n=n, evidence=ev, only=keep), default="parallel"
        )
        values = {
            v: t.expand(n) for v, t in infer_discrete(model, first_available_dim=-2, temperature=1)().items()
        }
    out = torch.zeros(n, len(bn.variables), dtype=torch.long, device=bn.device)
    for i, v in enumerate(bn.variables):
        if v not in values:
            logits = bn.table_logits(v, [values[u] for u in bn.parents(v)]).expand(n, bn.cards[v])
            # Gumbel-max: argmax(logits + G), G = -log E with E ~ Exp(1); a third of Categorical's cost here
            values[v] = (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)
        out[:, i] = values[v]
    return out


def _cardinality(fn) -> int | None:
    if not fn.has_enumerate_support or fn.event_shape != torch.Size():
        return None
    return int(fn.enumerate_support(expand=False).shape[0])


def from_pyro(cls, model, *args, **kwargs):
    r"""The :class:`~ppgen.graph.BayesNet` structure of a Pyro program (its prior dependencies)."""
    try:
        deps = get_dependencies(model, args, kwargs)["prior_dependencies"]
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    except Exception as e:  # a user's program failed to run
        raise PPGenError(f"could not trace the Pyro program: {type(e).__name__}: {e}") from None
    sites = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and name in deps and not site_is_subsample(site)
    ]
    cards = {name: _cardinality(trace.nodes[name]["fn"]) for name in sites}
    edges = [(u, v) for v in sites for u in deps[v] if u != v]
    bn = cls(edges, cards)
    for name in sites:
        site = trace.nodes[name]
        bn.graph.nodes[name]["observed"] = bool(site["is_observed"])
        bn.graph.nodes[name]["plates"] = tuple(f.name for f in site["cond_indep_stack"])
    return bn


def fit_svi(bn, x: Tensor, smoothing: float = 0.0, steps: int = 500, lr: float = 0.05):
    r"""Maximum likelihood (or the Dirichlet(1 + smoothing) MAP) of the dense CPTs by gradient ascent.

    The loss is ``Trace_ELBO().differentiable_loss`` of the net's Pyro program with an empty guide, i.e.
    -log p(x), minus ``smoothing * sum log theta`` (the prior's extra pseudo-counts); full batch, Adam.
    """
    if not all(bn.is_dense(v) for v in bn.variables):
        raise PPGenError("SVI needs every CPT dense; this net has sparse tables (use method='counting')")
    if not (isinstance(steps, int) and steps >= 1 and lr > 0):
        raise PPGenError(f"SVI needs steps >= 1 and lr > 0, got steps={steps!r}, lr={lr!r}")
    elbo = pyro.infer.Trace_ELBO()
    optimizer = torch.optim.Adam(bn.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = elbo.differentiable_loss(program, lambda *args, **kwargs: None, bn, x)
        if smoothing:
            loss = loss - smoothing * bn.log_prior()
        loss.backward()
        optimizer.step()
    return bn
