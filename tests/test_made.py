"""MADE specifics: masked layers, degrees and masks, order/connectivity resampling, the ensemble density.
(Normalization, sampling, structure and completion of the current mask are in test_autoregressive.py.)"""

import itertools
import math

import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.nn.masked import MaskedLinear, degree_mask, made_degrees

SPEC = DataSpec("binary", (1, 3, 3), 2)


def build(**config):
    config = {"hidden_sizes": [12, 12], "num_masks": 4, "resample_order": True, **config}
    m = ppgen.create("made", SPEC, **config).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return m.eval()


def all_states(spec):
    k = spec.num_categories
    return torch.tensor(list(itertools.product(range(k), repeat=spec.dim)), dtype=torch.float64).reshape(
        -1, *spec.event_shape
    )


def test_masked_linear_ignores_masked_inputs():
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    layer = MaskedLinear(3, 2, mask=mask)
    x = torch.randn(4, 3, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v).sum(0), x).sum(1)  # (2, 3)
    assert torch.equal(jac != 0, mask.bool())
    with pytest.raises(ValueError):
        layer.set_mask(torch.ones(3, 3))


def test_degrees_follow_the_ordering():
    order = torch.tensor([2, 0, 3, 1])
    degrees = made_degrees(order, [16, 8], torch.Generator().manual_seed(0))
    assert degrees[0].tolist() == [2, 4, 1, 3]  # 1 + position in the ordering
    assert torch.equal(degrees[-1], degrees[0])
    for previous, hidden in zip(degrees[:-2], degrees[1:-1]):
        assert int(hidden.min()) >= int(previous.min()) and int(hidden.max()) <= 3
    # the product of the masks connects output i only to inputs strictly before it in the ordering
    masks = [degree_mask(a, b, strict=False) for a, b in zip(degrees[:-2], degrees[1:-1])]
    reach = degree_mask(degrees[-2], degrees[-1], strict=True) @ masks[1] @ masks[0]
    before = degrees[0][:, None] > degrees[0][None, :]
    assert not ((reach > 0) & ~before).any()


def test_every_mask_set_is_a_normalized_autoregressive_model():
    m = build()
    x = all_states(SPEC)
    for k in range(m.num_masks):
        m.use_mask(k)
        order = m.ordering().tolist()
        for i, parents in m.dependencies().items():
            assert parents <= set(order[: order.index(i)])
        with torch.no_grad():
            assert abs(float(m.log_prob(x).exp().sum()) - 1) < 1e-10


def test_ensemble_is_the_normalized_mixture_of_the_mask_sets():
    m = build()
    x = all_states(SPEC)
    with torch.no_grad():
        singles = []
        for k in range(m.num_masks):
            m.use_mask(k)
            singles.append(m.log_prob(x))
        m.use_mask(2)
        ensemble = m.ensemble_log_prob(x)
        lp, kind = m.evaluation_log_prob(x)
    assert int(m.mask_index) == 2  # restored
    assert kind == "exact" and torch.equal(lp, ensemble)
    assert torch.allclose(
        ensemble, torch.logsumexp(torch.stack(singles), 0) - math.log(m.num_masks), atol=1e-12
    )
    assert abs(float(ensemble.exp().sum()) - 1) < 1e-10


def test_resampling_orders_and_connectivity():
    fixed = build(resample_order=False)
    assert (fixed.orders == fixed.orders[0]).all()
    assert not (fixed.hidden_degrees == fixed.hidden_degrees[0]).all()  # connectivity still varies
    free = build()
    assert torch.equal(free.orders[0], torch.arange(SPEC.dim))  # the first set keeps the given order
    assert len({tuple(o.tolist()) for o in free.orders}) == free.num_masks


def test_training_cycles_the_mask_sets_and_eval_returns_to_the_first():
    m = build().train()
    x = torch.bernoulli(torch.full((8, *SPEC.event_shape), 0.5, dtype=torch.float64))
    seen = []
    for _ in range(m.num_masks):
        m.model(x)
        seen.append(int(m.mask_index))
    assert sorted(seen) == list(range(m.num_masks))
    m.eval()
    assert int(m.mask_index) == 0 and torch.equal(m.ordering(), m.orders[0])


def test_categorical_and_conditional_made_are_normalized():
    spec = DataSpec("categorical:3", (1, 2, 2), 2)
    m = (
        ppgen.create("made", spec, hidden_sizes=[10], num_masks=2, resample_order=True, conditional=True)
        .double()
        .eval()
    )
    x = all_states(spec)
    y = torch.ones(len(x), dtype=torch.long)
    with torch.no_grad():
        assert abs(float(m.ensemble_log_prob(x, y).exp().sum()) - 1) < 1e-10


@pytest.mark.parametrize(
    "config",
    [{"num_masks": 0}, {"hidden_sizes": []}, {"hidden_sizes": [0]}, {"order": "spiral"}, {"dropout": -0.1}],
)
def test_bad_config_raises(config):
    with pytest.raises(PPGenError):
        ppgen.create("made", SPEC, **config)
