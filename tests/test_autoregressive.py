"""The shared density driver of the autoregressive family: every registered model with
``family == "autoregressive"``, on every data kind it supports, with D <= 10 so that every state can
be enumerated (3x3 binary images, 2x2 images with 3 levels) or, for continuous data, the 2-D density
integrated on a grid.

Models are built with their ``tiny_config``, in float64, with their parameters perturbed away from
the initialisation (so that the conditionals are far from uniform and the tests have power).
"""

import itertools
import math

import pyro
import pytest
import torch
from scipy import stats

import ppgen
import ppgen.models  # noqa: F401  (registers every model)
from ppgen.base import REGISTRY, supports
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.graph import variable_names
from ppgen.likelihoods import AutoregressiveLikelihood

SPECS = [
    DataSpec("binary", (1, 3, 3), 2),
    DataSpec("categorical:3", (1, 2, 2), 2),
    DataSpec("continuous", (2,), 2),
]
GRID = torch.linspace(
    -15.0, 15.0, 601, dtype=torch.float64
)  # for continuous models: step 0.05 over [-15, 15]^2


def _cases():
    for name, cls in sorted(REGISTRY.items()):
        if cls.family != "autoregressive":
            continue
        for spec in SPECS:
            if supports(cls, spec) is not None:
                continue
            yield pytest.param(name, spec, False, id=f"{name}-{spec.kind}")
            if cls.conditionable:
                yield pytest.param(name, spec, True, id=f"{name}-{spec.kind}-y")


CASES = list(_cases())
DISCRETE = [c for c in CASES if c.values[1].kind != "continuous"]
CONTINUOUS = [c for c in CASES if c.values[1].kind == "continuous"]


def build(name, spec, conditional, perturb=True):
    config = dict(REGISTRY[name].tiny_config)
    if conditional:
        config["conditional"] = True
    m = ppgen.create(name, spec, **config).double()
    if perturb and spec.kind != "continuous":
        with torch.no_grad():
            for p in m.parameters():  # relative to each tensor's scale, so that wide layers stay sensible
                spread = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 1.0
                p.add_(0.5 * spread * torch.randn_like(p))
    return m.eval()


def all_states(spec):
    k = spec.num_categories
    return torch.tensor(list(itertools.product(range(k), repeat=spec.dim)), dtype=torch.float64).reshape(
        -1, *spec.event_shape
    )


def state_index(x, spec):
    k = spec.num_categories
    weights = k ** torch.arange(spec.dim - 1, -1, -1)
    return (x.reshape(x.shape[0], -1).long() * weights).sum(1)


def labels(n, conditional, value=1):
    return torch.full((n,), value, dtype=torch.long) if conditional else None


def per_dimension(params, spec):
    r"""Conditional parameters -> (B, D, P) from any layout: (B, *event, P), (B, *event), (B, P, *event)."""
    b, n = params.shape[0], len(spec.event_shape)
    if tuple(params.shape[1 : 1 + n]) == tuple(spec.event_shape):
        return params.reshape(b, spec.dim, -1)
    return params.reshape(b, -1, spec.dim).transpose(1, 2)


def chi_square_pvalue(counts, probs, min_expected=5.0):
    r"""Pearson's chi-square of counts against probabilities, pooling cells expected below ``min_expected``.

    Returns 0 if any sample fell on a state of probability 0, 1 if a single cell holds all the mass.
    """
    if counts[probs <= 0].sum() > 0:
        return 0.0
    n = counts.sum()
    expected = probs / probs.sum() * n
    small = expected < min_expected
    obs = torch.cat([counts[~small], counts[small].sum().reshape(1)])
    exp = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    keep = exp > 0
    obs, exp = obs[keep].numpy(), exp[keep].numpy()
    if len(obs) < 2:
        return 1.0
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def grid_density(m, y_value=None):
    x = torch.cartesian_prod(GRID, GRID)
    y = labels(x.shape[0], y_value is not None, y_value or 0)
    with torch.no_grad():
        return torch.cat(
            [
                m.log_prob(xb, yb).exp()
                for xb, yb in zip(x.split(65536), y.split(65536) if y is not None else [None] * 64)
            ]
        )  # (G*G,)


# --- normalization ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,spec,conditional", DISCRETE)
def test_sums_to_one(name, spec, conditional):
    m = build(name, spec, conditional)
    x = all_states(spec)
    for value in [0, 1] if conditional else [0]:
        with torch.no_grad():
            total = m.log_prob(x, labels(len(x), conditional, value)).exp().sum()
        assert abs(float(total) - 1.0) < 1e-5


@pytest.mark.parametrize("name,spec,conditional", CONTINUOUS)
def test_integrates_to_one(name, spec, conditional):
    m = build(name, spec, conditional)
    step = float(GRID[1] - GRID[0])
    total = grid_density(m, 1 if conditional else None).sum() * step**2
    assert abs(float(total) - 1.0) < 0.01


# --- sampling -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,spec,conditional", DISCRETE)
def test_samples_match_density(name, spec, conditional):
    m = build(name, spec, conditional)
    n = 3000
    x = m.sample(n, labels(n, conditional))
    assert x.shape == (n, *spec.event_shape)
    counts = torch.bincount(state_index(x, spec), minlength=spec.num_categories**spec.dim).double()
    with torch.no_grad():
        probs = m.log_prob(all_states(spec), labels(spec.num_categories**spec.dim, conditional)).exp()
    assert chi_square_pvalue(counts, probs) > 1e-3


@pytest.mark.parametrize("name,spec,conditional", CONTINUOUS)
def test_samples_match_density_continuous(name, spec, conditional):
    m = build(name, spec, conditional)
    n = 6000
    x = m.sample(n, labels(n, conditional))
    edges = torch.tensor([-math.inf, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, math.inf], dtype=torch.float64)
    bins = len(edges) - 1
    cell = lambda v: (
        torch.bucketize(v[:, 0].contiguous(), edges[1:-1]) * bins
        + torch.bucketize(v[:, 1].contiguous(), edges[1:-1])
    )  # noqa: E731
    counts = torch.bincount(cell(x), minlength=bins * bins).double()
    grid = torch.cartesian_prod(GRID, GRID)
    mass = grid_density(m, 1 if conditional else None) * float(GRID[1] - GRID[0]) ** 2
    probs = torch.zeros(bins * bins, dtype=torch.float64).index_add_(0, cell(grid), mass)
    assert chi_square_pvalue(counts, probs / probs.sum()) > 1e-3


# --- structure ------------------------------------------------------------------------------------------
def found_dependencies(m, spec, conditional):
    r"""For each flat dimension i, the inputs j whose gradient reaches the parameters of conditional i."""
    if spec.kind == "continuous":
        x = torch.randn(256, *spec.event_shape, dtype=torch.float64) * 3
    else:
        x = all_states(spec)
    x.requires_grad_(True)
    params = per_dimension(m.conditionals(x, labels(x.shape[0], conditional)), spec)
    found = {}
    for i in range(spec.dim):
        weights = torch.rand(params.shape[-1], dtype=torch.float64) + 0.5
        (grad,) = torch.autograd.grad((params[:, i] * weights).sum(), x, retain_graph=True)
        reached = grad.reshape(x.shape[0], -1).abs().sum(0) > 0
        found[i] = set(torch.nonzero(reached).flatten().tolist())
    return found


@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_autoregressive_property_and_graph(name, spec, conditional):
    m = build(name, spec, conditional)
    order = m.ordering().tolist()
    assert sorted(order) == list(range(spec.dim))
    found = found_dependencies(m, spec, conditional)
    for position, i in enumerate(order):
        assert found[i] <= set(order[:position]), f"conditional {i} reads a later dimension: {found[i]}"
    declared = m.dependencies()
    assert {i: set(s) for i, s in declared.items()} == found
    g = m.graph()
    names = variable_names(spec.dim)
    assert list(g.nodes) == names
    assert set(g.edges) == {(names[j], names[i]) for i, parents in found.items() for j in parents}


@pytest.mark.parametrize("name,spec,conditional", DISCRETE)
def test_conditionals_ignore_undeclared_inputs(name, spec, conditional):
    # Without autograd: two states that agree on dependencies()[i] get the same conditional i.
    m = build(name, spec, conditional)
    x = all_states(spec)
    with torch.no_grad():
        params = per_dimension(m.conditionals(x, labels(len(x), conditional)), spec)
    flat = x.reshape(len(x), -1)
    for i, parents in m.dependencies().items():
        keys = flat[:, sorted(parents)] if parents else torch.zeros(len(x), 1, dtype=flat.dtype)
        _, group = torch.unique(keys, dim=0, return_inverse=True)
        first = torch.zeros(int(group.max()) + 1, dtype=torch.long).scatter_(
            0, group.flip(0), torch.arange(len(x)).flip(0)
        )
        assert torch.allclose(params[:, i], params[first[group], i], atol=1e-12)


# --- completion -----------------------------------------------------------------------------------------
def prefix_mask(m, spec, k):
    mask = torch.zeros(spec.dim, dtype=torch.bool)
    mask[m.ordering()[:k]] = True
    return mask.reshape(spec.event_shape)


@pytest.mark.parametrize("name,spec,conditional", DISCRETE)
def test_complete_keeps_observed_and_samples_the_conditional(name, spec, conditional):
    m = build(name, spec, conditional)
    states = all_states(spec)
    mask = prefix_mask(m, spec, spec.dim // 2)
    n = 2000
    x = states[torch.randint(len(states), (1,))].expand(n, *spec.event_shape)
    out = m.complete(x, mask, labels(n, conditional))
    assert torch.equal(out[:, mask], x[:, mask])
    # the unobserved part follows p(x_unobserved | x_observed), the normalized slice of exp(log_prob)
    match = (states[:, mask] == x[0, mask]).all(1)
    with torch.no_grad():
        joint = m.log_prob(states, labels(len(states), conditional)).exp() * match
    counts = torch.bincount(state_index(out, spec), minlength=len(states)).double()
    assert counts[~match].sum() == 0
    assert chi_square_pvalue(counts[match], (joint / joint.sum())[match]) > 1e-3


@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_complete_rejects_masks_the_ordering_cannot_condition_on(name, spec, conditional):
    m = build(name, spec, conditional)
    mask = torch.zeros(spec.dim, dtype=torch.bool)
    mask[m.ordering()[-1]] = True  # observes the last dimension only
    x = torch.zeros(3, *spec.event_shape, dtype=torch.float64)
    with pytest.raises(PPGenError):
        m.complete(x, mask.reshape(spec.event_shape), labels(3, conditional))


@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_complete_with_everything_observed_is_the_identity(name, spec, conditional):
    m = build(name, spec, conditional)
    x = m.sample(5, labels(5, conditional))
    mask = torch.ones(spec.event_shape, dtype=torch.bool)
    assert torch.equal(m.complete(x, mask, labels(5, conditional)), x)


# --- Pyro, validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_pyro_trace_equals_log_prob(name, spec, conditional):
    m = build(name, spec, conditional)
    x = m.sample(7, labels(7, conditional))
    y = labels(7, conditional)
    trace = pyro.poutine.trace(m.model).get_trace(x, y)
    assert isinstance(trace.nodes["x"]["fn"], AutoregressiveLikelihood)
    with torch.no_grad():
        expected = m.log_prob(x, y).sum()
    assert torch.allclose(trace.log_prob_sum(), expected, atol=1e-10)
    drawn = pyro.poutine.trace(m.model).get_trace(None, y).nodes["x"]["value"]  # a plate of len(y), or of 1
    assert drawn.shape == (7 if conditional else 1, *spec.event_shape)


@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_training_step_reaches_every_parameter(name, spec, conditional):
    m = build(name, spec, conditional).train()
    x = m.sample(16, labels(16, conditional))
    loss = m.elbo().differentiable_loss(m.model, m.guide, x, labels(16, conditional)) / 16
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name,spec,conditional", CASES)
def test_bad_input_raises(name, spec, conditional):
    m = build(name, spec, conditional)
    y = labels(2, conditional)
    with pytest.raises(PPGenError):
        m.log_prob(torch.zeros(2, spec.dim + 1, dtype=torch.float64), y)
    with pytest.raises(PPGenError):
        m.log_prob(torch.full((2, *spec.event_shape), math.nan, dtype=torch.float64), y)
    if spec.kind != "continuous":
        with pytest.raises(PPGenError):
            m.log_prob(torch.full((2, *spec.event_shape), float(spec.num_categories), dtype=torch.float64), y)
    if conditional:
        with pytest.raises(PPGenError):
            m.log_prob(torch.zeros(2, *spec.event_shape, dtype=torch.float64))
        with pytest.raises(PPGenError):
            m.log_prob(torch.zeros(2, *spec.event_shape, dtype=torch.float64), torch.tensor([0, 5]))
