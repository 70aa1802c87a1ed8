"""Quality targets of the autoregressive models on `digits` (binary 8x8): each trained by its DEFAULT
config (constructor defaults and ``fit_defaults``), scored by its reported exact test NLL in nats.
Slow: run by ``make test-all``."""

import pytest

import ppgen

TARGETS = {"fvsbn": 18.4, "nade": 16.8, "made": 17.2}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_default_config_reaches_target_on_digits(name):
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    model = ppgen.create(name, train)
    ppgen.fit(model, train, progress=False)
    metrics = ppgen.evaluate(model, test)
    assert metrics["test_nll_kind"] == "exact"
    assert metrics["test_nll_nats"] <= TARGETS[name], metrics


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nade", "made"])
def test_conditional_variant_uses_the_label(name):
    # p(x | y) must beat p(x) on held-out digits when both are trained alike: the label carries information.
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    nll = {}
    for conditional in (False, True):
        ppgen.seed_everything(0)
        model = ppgen.create(name, train, conditional=conditional)
        ppgen.fit(model, train, epochs=30, progress=False)
        nll[conditional] = ppgen.evaluate(model, test)["test_nll_nats"]
    assert nll[True] < nll[False] - 0.5, nll
