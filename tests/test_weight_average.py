"""The weight average of ppgen.fit: the recursion, what the epoch callback and the caller get, resuming."""

import pytest
import torch

import ppgen
from ppgen.errors import PPGenError
from ppgen.inference import OBJECTIVES, Objective, register_objective
from ppgen.inference.weight_average import WeightAverage


@pytest.fixture
def data():
    torch.manual_seed(0)
    return ppgen.data.from_tensor(torch.bernoulli(torch.full((64, 5), 0.3)), "binary")


@pytest.fixture
def recording_objective():
    @register_objective("test-records")
    class Records(Objective):
        r"""Plain SGD on -log p(x) that keeps a copy of the weights after every step (the iterates)."""

        def __init__(self, model, lr, **options):
            super().__init__(model, lr)
            self.iterates = []
            self.optimizers["sgd"] = torch.optim.SGD(model.parameters(), lr=0.5)

        def step(self, x, y):
            loss = -self.model.log_prob(x).mean()
            self.optimizers["sgd"].zero_grad()
            loss.backward()
            self.optimizers["sgd"].step()
            self.iterates.append([p.detach().clone() for p in self.model.parameters()])
            return {"loss": loss.item()}

    yield "test-records"
    del OBJECTIVES["test-records"]


def manual_average(iterates, initial, decay):
    avg = [p.clone() for p in initial]
    for t, weights in enumerate(iterates):
        d = min(decay, (1 + t) / (10 + t))
        avg = [d * a + (1 - d) * w for a, w in zip(avg, weights)]
    return avg


def test_the_recursion_and_swapping():
    layer = torch.nn.Linear(3, 2)
    initial = [p.detach().clone() for p in layer.parameters()]
    average = WeightAverage(layer, decay=0.9)
    iterates = []
    for _ in range(30):
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(torch.randn_like(p))
        iterates.append([p.detach().clone() for p in layer.parameters()])
        average.update()
    expected = manual_average(iterates, initial, 0.9)
    average.swap()
    assert all(torch.allclose(p, e, atol=1e-6) for p, e in zip(layer.parameters(), expected))
    with pytest.raises(RuntimeError, match="swapped"):
        average.update()
    average.swap()
    assert all(torch.equal(p, w) for p, w in zip(layer.parameters(), iterates[-1]))
    with pytest.raises(PPGenError, match="ema_decay"):
        WeightAverage(layer, decay=1.0)


def test_fit_hands_the_average_to_the_callback_and_the_caller(data, recording_objective):
    model = ppgen.create("independent", data)
    initial = [p.detach().clone() for p in model.parameters()]
    seen = []
    result = ppgen.fit(
        model,
        data,
        objective=recording_objective,
        epochs=3,
        batch_size=16,
        ema_decay=0.95,
        progress=False,
        on_epoch_end=lambda e, row, obj: seen.append((obj, [p.detach().clone() for p in model.parameters()])),
    )
    objective = seen[-1][0]
    assert result.steps == 12 and len(objective.iterates) == 12
    after_one_epoch = manual_average(objective.iterates[:4], initial, 0.95)
    assert all(torch.allclose(p, e, atol=1e-6) for p, e in zip(seen[0][1], after_one_epoch))
    final = manual_average(objective.iterates, initial, 0.95)
    assert all(torch.allclose(p, e, atol=1e-6) for p, e in zip(model.parameters(), final))
    assert not all(torch.allclose(p, w) for p, w in zip(model.parameters(), objective.iterates[-1]))


def test_without_a_decay_fit_returns_the_last_iterate(data, recording_objective):
    model = ppgen.create("independent", data)
    seen = []
    ppgen.fit(
        model,
        data,
        objective=recording_objective,
        epochs=2,
        batch_size=16,
        ema_decay=0,
        progress=False,
        on_epoch_end=lambda e, row, obj: seen.append(obj),
    )
    assert seen[-1].average is None and "weight_average" not in seen[-1].state_dict()
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), seen[-1].iterates[-1]))


def test_resuming_trains_the_iterate_and_continues_the_average(data, recording_objective):
    straight = ppgen.create("independent", data)
    split = ppgen.create("independent", data)
    split.load_state_dict(straight.state_dict())
    options = dict(
        objective=recording_objective, batch_size=64, ema_decay=0.9, progress=False
    )  # full batches: the order does not matter
    ppgen.fit(straight, data, epochs=4, **options)
    states = {}
    ppgen.fit(
        split, data, epochs=2, on_epoch_end=lambda e, r, obj: states.update(obj=obj.state_dict()), **options
    )
    assert states["obj"]["weight_average"]["swapped"] and states["obj"]["weight_average"]["steps"] == 2
    ppgen.fit(
        split, data, epochs=4, start_epoch=2, objective_state=states["obj"], **options
    )  # split holds the average, as a checkpoint does
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(straight.parameters(), split.parameters()))


def test_the_vae_family_averages_by_default(data):
    assert ppgen.get("vae").fit_defaults["ema_decay"] > 0 and ppgen.get("iwae").fit_defaults["ema_decay"] > 0
    model = ppgen.create("vae", data, latent_dim=2, hidden=(8,), pseudo_inputs=3)
    states = {}
    ppgen.fit(
        model,
        data,
        epochs=1,
        progress=False,
        on_epoch_end=lambda e, r, obj: states.update(obj=obj.state_dict()),
    )
    assert states["obj"]["weight_average"]["steps"] == 1
