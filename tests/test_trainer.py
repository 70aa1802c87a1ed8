"""The training loop: budgets, non-finite losses, resuming, devices."""

import math

import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference import OBJECTIVES, Objective, register_objective


@pytest.fixture
def binary_data():
    return ppgen.data.from_tensor(torch.bernoulli(torch.full((256, 5), 0.4)), "binary")


@pytest.fixture
def exploding_objective():
    @register_objective("test-explodes")
    class Explodes(Objective):
        r"""Takes real gradient steps, then returns NaN at the 5th step."""

        def __init__(self, model, lr, **options):
            super().__init__(model, lr)
            self.count = 0
            self.optimizers["sgd"] = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(self, x, y):
            self.count += 1
            loss = -self.model.log_prob(x).mean()
            self.optimizers["sgd"].zero_grad()
            loss.backward()
            self.optimizers["sgd"].step()
            return {"loss": math.nan if self.count == 5 else loss.item()}

    yield "test-explodes"
    del OBJECTIVES["test-explodes"]


def test_non_finite_loss_stops_and_restores_the_last_good_state(binary_data, exploding_objective):
    model = ppgen.create("mixture", binary_data)
    seen = []
    with pytest.raises(NonFiniteLossError, match="restored the model of epoch 2") as err:
        ppgen.fit(
            model,
            binary_data,
            objective=exploding_objective,
            epochs=10,
            batch_size=128,
            progress=False,
            on_epoch_end=lambda e, row, obj: seen.append(
                {k: v.clone() for k, v in model.state_dict().items()}
            ),
        )
    assert len(seen) == 2  # two epochs of 2 steps each ended well
    assert all(torch.equal(v, seen[-1][k]) for k, v in model.state_dict().items())
    assert err.value.model is model


def test_steps_and_budget_stop_training(binary_data):
    model = ppgen.create("mixture", binary_data)
    result = ppgen.fit(model, binary_data, steps=3, batch_size=32, progress=False)
    assert result.steps == 3 and result.epochs == 1
    result = ppgen.fit(model, binary_data, budget_seconds=0.2, batch_size=32, progress=False)
    assert result.seconds < 5


def test_resuming_continues_from_the_saved_epoch(binary_data):
    model = ppgen.create("mixture", binary_data)
    states = {}
    ppgen.fit(
        model,
        binary_data,
        epochs=2,
        progress=False,
        on_epoch_end=lambda e, r, obj: states.update(obj=obj.state_dict()),
    )
    result = ppgen.fit(
        model, binary_data, epochs=4, start_epoch=2, objective_state=states["obj"], progress=False
    )
    assert result.epochs == 4 and len(result.log) == 2


def test_fit_rejects_data_of_another_shape(binary_data):
    model = ppgen.create("mixture", DataSpec("binary", (6,)))
    with pytest.raises(PPGenError, match="built for"):
        ppgen.fit(model, binary_data, progress=False)
    with pytest.raises(PPGenError, match="unknown objective"):
        ppgen.fit(ppgen.create("mixture", binary_data), binary_data, objective="nope", progress=False)


@pytest.mark.gpu
def test_fit_and_evaluate_on_cuda():
    train, test = ppgen.data.load("rings8", "train", n=2000), ppgen.data.load("rings8", "test", n=500)
    model = ppgen.create("mixture", train).to("cuda")
    ppgen.fit(model, train, epochs=2, progress=False)
    metrics = ppgen.evaluate(model, test)
    assert metrics["device"].startswith("cuda") and math.isfinite(metrics["test_nll_nats"])
    assert model.sample(4).is_cuda


def test_elbo_weight_decay_defaults_to_the_model_and_can_be_overridden():
    from ppgen.inference.elbo import ELBOObjective

    m = ppgen.create("iwae", DataSpec("binary", (1, 3, 3)), latent_dim=2, hidden=(8,))
    decay = lambda objective: objective.optimizers["adam"].param_groups[0]["weight_decay"]  # noqa: E731
    assert decay(ELBOObjective(m, lr=1e-3)) == type(m).fit_defaults["weight_decay"] > 0
    assert decay(ELBOObjective(m, lr=1e-3, weight_decay=0.0)) == 0.0
    assert decay(ELBOObjective(ppgen.create("vae", DataSpec("binary", (1, 3, 3))), lr=1e-3)) == 0.0
