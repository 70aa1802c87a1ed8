"""The fast training path: every model's ``training_loss`` equals the traced Pyro loss it replaces (value,
gradients and random draws), fused Adam, and fit's steps without distribution validation."""

import pytest
import torch

import ppgen
import ppgen.models  # noqa: F401  (fills the registry)
from ppgen.base import REGISTRY
from ppgen.data import DataSpec
from ppgen.inference.objective import adam

SPECS = {
    "binary": DataSpec("binary", (1, 3, 3), num_classes=3),
    "categorical": DataSpec("categorical:3", (1, 3, 3), num_classes=3),
    "continuous": DataSpec("continuous", (3,), num_classes=3),
}


def _data(spec: DataSpec, n: int = 6) -> torch.Tensor:
    if spec.kind == "continuous":
        return torch.randn(n, *spec.event_shape, dtype=torch.float64)
    return torch.randint(0, spec.num_categories, (n, *spec.event_shape)).double()


def _cases():
    for name, cls in sorted(REGISTRY.items()):
        if cls.objective not in ("elbo", "annealed-elbo"):
            continue
        kind = next(k for k in SPECS if k in cls.kinds)
        yield name, kind, False
        if "conditional" in cls.__init__.__code__.co_varnames or cls.conditional:
            yield name, kind, True


@pytest.mark.parametrize("name, kind, conditional", list(_cases()))
def test_training_loss_equals_the_traced_loss(name, kind, conditional):
    ppgen.seed_everything(0)
    config = {"conditional": True} if conditional and not REGISTRY[name].conditional else {}
    try:
        m = ppgen.create(name, SPECS[kind], **config).double()
    except ppgen.PPGenError as e:
        pytest.skip(f"{name} is not built for {kind} data here: {e}")
    x = _data(m.spec)
    y = torch.tensor([0, 1, 2, 0, 1, 2]) if m.conditional else None
    if not m.conditional:
        m.initialize(ppgen.data.from_tensor(x.float(), kind=m.spec.kind))
    m.train()
    with torch.no_grad():  # move every weight off its initial value (e.g. zero logits)
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    params = [p for p in m.parameters() if p.requires_grad]
    state = {k: v.clone() for k, v in m.state_dict().items()}  # a step may move buffers (made's mask set)
    ppgen.seed_everything(1)
    fast = m.training_loss(x, y)
    if fast is None:
        pytest.skip(f"{name} is trained through its traced Pyro program")
    fast_grads = torch.autograd.grad(fast, params, allow_unused=True)
    m.load_state_dict(state)
    ppgen.seed_everything(1)
    traced = m.elbo().differentiable_loss(m.model, m.guide, x, y)
    grads = torch.autograd.grad(traced, params, allow_unused=True)
    assert torch.allclose(fast, traced, rtol=1e-10, atol=1e-10), (float(fast), float(traced))
    for a, b in zip(fast_grads, grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_user_programs_are_traced():
    import pyro
    import pyro.distributions as dist

    def model(x=None):
        loc = pyro.param("loc", torch.zeros(2))
        with pyro.plate("data", 1 if x is None else x.shape[0]):
            return pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    pyro.clear_param_store()
    data = ppgen.data.from_tensor(torch.randn(32, 2) + 3.0, kind="continuous")
    m = ppgen.program(model, name="shifted", data=data)
    assert m.training_loss(data.x) is None
    before = m.log_prob(data.x).mean()
    result = ppgen.fit(m, data, steps=20, batch_size=16, lr=0.1, progress=False)
    assert result.steps == 20 and m.log_prob(data.x).mean() > before


def test_adam_is_fused_where_possible_and_steps_like_adam():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3))
    w2 = torch.nn.Parameter(w.detach().clone())
    fused, plain = adam([w], 0.01, weight_decay=0.1), torch.optim.Adam([w2], lr=0.01, weight_decay=0.1)
    assert fused.param_groups[0]["fused"]
    for _ in range(5):
        for p, opt in ((w, fused), (w2, plain)):
            opt.zero_grad()
            (p.sin().sum() + p.square().sum()).backward()
            opt.step()
    assert torch.allclose(w, w2, atol=1e-6)


def test_validation_is_off_after_the_first_step_and_restored():
    seen = []
    data = ppgen.data.load("rings8", "train", n=64)
    m = ppgen.create("nsf", data)
    step = type(m).training_loss

    def recording(self, x, y=None):
        seen.append(torch.distributions.Distribution._validate_args)
        return step(self, x, y)

    before = torch.distributions.Distribution._validate_args
    type(m).training_loss = recording
    try:
        ppgen.fit(m, data, steps=3, batch_size=16, progress=False)
    finally:
        type(m).training_loss = step
    assert seen == [before, False, False]
    assert torch.distributions.Distribution._validate_args == before


@pytest.mark.parametrize("kind", ["binary", "categorical", "continuous"])
def test_pairwise_log_prob_is_every_components_log_likelihood(kind):
    from ppgen.likelihoods import factorized, factorized_params_shape, pairwise_log_prob

    ppgen.seed_everything(0)
    spec = SPECS[kind] if kind != "categorical" else DataSpec("categorical:4", (2, 3))
    params = torch.randn(5, *factorized_params_shape(spec), dtype=torch.float64)
    x = _data(spec, n=7)
    expected = factorized(spec, params).log_prob(x.unsqueeze(1))  # (7, 5)
    got = pairwise_log_prob(spec, params, x)
    assert got.shape == (7, 5)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


COUNTED = [
    ("independent", "binary", {}),
    ("independent", "categorical", {}),
    ("independent", "continuous", {}),
    ("bayesnet", "binary", {"structure": "markov", "order": 2}),
    ("bayesnet", "categorical", {"structure": "markov", "order": 1, "smoothing": 0.5}),
    ("bayesnet", "binary", {"structure": "chain", "max_table": 8}),  # sparse tables beyond 8 entries
]


@pytest.mark.parametrize("name, kind, config", COUNTED)
def test_the_counting_loss_from_statistics_is_the_sum_of_log_probs(name, kind, config):
    r"""sum over cells of count log theta = sum_i log p(x_i), under parameters fit to other data (so that
    some cells of the batch were never seen)."""
    ppgen.seed_everything(0)
    spec = SPECS[kind]
    m = ppgen.create(name, spec, **config).double()
    ppgen.fit(m, ppgen.data.from_tensor(_data(spec, n=40).float(), kind=spec.kind), progress=False)
    x = _data(spec, n=9)
    with torch.no_grad():
        from_statistics = m.statistics_log_likelihood(m.sufficient_statistics(x))
        assert torch.allclose(from_statistics.double(), m.log_prob(x).double().sum(), rtol=1e-9, atol=1e-9)


def test_fit_checks_values_on_the_first_step_only():
    r"""Inside fit, batches after the first skip the value checks (the data were checked once), and the
    checks are back on after fit, also when it raises."""
    from ppgen.validation import values_checked

    seen = []

    class Spy(REGISTRY["independent"]):
        def sufficient_statistics(self, x, y=None):
            seen.append(values_checked())
            return super().sufficient_statistics(x, y)

    class Broken(Spy):
        def sufficient_statistics(self, x, y=None):
            if len(seen) == 8:
                raise KeyError("a fault inside the third step")
            return super().sufficient_statistics(x, y)

    m = Spy(SPECS["binary"])
    data = ppgen.data.from_tensor(_data(SPECS["binary"], n=12).float(), kind="binary")
    ppgen.fit(m, data, epochs=2, batch_size=4, progress=False)
    assert seen == [True] + [False] * 5
    assert values_checked()
    with pytest.raises(KeyError, match="third step"):
        ppgen.fit(Broken(SPECS["binary"]), data, epochs=1, batch_size=4, progress=False)
    assert seen[6:] == [True, False] and values_checked()
    with pytest.raises(ppgen.PPGenError, match="NaN"):
        m.log_prob(torch.full((1, 1, 3, 3), float("nan")))
