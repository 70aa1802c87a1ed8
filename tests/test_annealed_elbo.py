"""The annealed ELBO objective: per-epoch learning-rate decay and the data-noise continuation."""

import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.inference.annealed_elbo import AnnealedELBOObjective


def recording(objective):
    r"""Makes the objective's loss record every batch it is given, on whichever path it takes (the model's
    fused ``training_loss`` or Pyro's traced loss); returns the list of batches."""
    seen, loss, fused = [], objective.loss_fn.differentiable_loss, objective.model.training_loss

    def record(model, guide, x, y):
        seen.append(x.clone())
        return loss(model, guide, x, y)

    def record_fused(x, y=None):
        seen.append(x.clone())
        return fused(x, y)

    objective.loss_fn.differentiable_loss = record
    objective.model.training_loss = record_fused
    return seen


def gaussian_data(n=4096, scale=(1.0, 10.0)):
    return torch.randn(n, 2) * torch.tensor(scale)


@pytest.mark.filterwarnings("ignore:Detected call of")  # no optimizer step is taken here
def test_learning_rate_decays_every_epoch_down_to_its_floor():
    m = ppgen.create("realnvp", DataSpec("continuous", (2,)), num_layers=1, hidden_dims=(4,))
    objective = AnnealedELBOObjective(m, lr=1.0, lr_decay=0.5, min_lr_fraction=0.2, data_noise=0.0)
    rates = [objective.end_epoch()["lr"] for _ in range(4)]
    assert rates == pytest.approx([0.5, 0.25, 0.2, 0.2])


def test_data_noise_is_relative_to_each_coordinate_and_decays_every_epoch():
    m = ppgen.create("realnvp", DataSpec("continuous", (2,)), num_layers=1, hidden_dims=(4,))
    objective = AnnealedELBOObjective(m, lr=1e-3, data_noise=0.5, noise_decay=0.5)
    seen = recording(objective)
    x = gaussian_data()
    for level in (0.5, 0.25):
        objective.step(x, None)
        noise_std = (seen[-1] - x).std(0)
        assert noise_std == pytest.approx(level * x.std(0), rel=0.05)  # (1, 10) times the level
        assert objective.end_epoch()["data_noise"] == level


def test_no_noise_leaves_the_batches_untouched_and_logs_nothing():
    m = ppgen.create("realnvp", DataSpec("continuous", (2,)), num_layers=1, hidden_dims=(4,))
    objective = AnnealedELBOObjective(m, lr=1e-3, data_noise=0.0)
    seen = recording(objective)
    x = gaussian_data(64)
    objective.step(x, None)
    assert torch.equal(seen[0], x) and "data_noise" not in objective.end_epoch()


def test_noise_level_comes_from_the_model_defaults_and_survives_a_state_round_trip():
    spec = DataSpec("continuous", (2,))
    m = ppgen.create("maf", spec, num_layers=1, hidden_dims=(4,))
    objective = AnnealedELBOObjective(m, lr=1e-3)
    assert objective.data_noise == type(m).fit_defaults["data_noise"] > 0
    objective.step(gaussian_data(64), None)
    objective.end_epoch()
    resumed = AnnealedELBOObjective(ppgen.create("maf", spec, num_layers=1, hidden_dims=(4,)), lr=1e-3)
    resumed.load_state_dict(objective.state_dict())
    assert resumed.data_noise == objective.data_noise < type(m).fit_defaults["data_noise"]
    assert torch.equal(resumed.noise_scale, objective.noise_scale)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"data_noise": -0.1}, "data_noise must be >= 0"),
        ({"noise_decay": 1.5}, "noise_decay must be in"),
        ({"lr_decay": 0.0}, "lr_decay must be in"),
    ],
)
def test_bad_schedules_are_refused(options, match):
    m = ppgen.create("realnvp", DataSpec("continuous", (2,)), num_layers=1, hidden_dims=(4,))
    with pytest.raises(PPGenError, match=match):
        AnnealedELBOObjective(m, lr=1e-3, **options)


def test_data_noise_on_discrete_data_is_refused():
    m = ppgen.create("glow", DataSpec("categorical:4", (1, 4, 4)))
    with pytest.raises(PPGenError, match="needs continuous data"):
        AnnealedELBOObjective(m, lr=1e-3, data_noise=0.1)
