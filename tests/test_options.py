"""Training options: one merged, validated mechanism (objective defaults < model fit_defaults < given)
and one learning-rate schedule for every objective."""

import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.inference.denoising import DenoisingObjective
from ppgen.inference.elbo import ELBOObjective
from ppgen.inference.objective import OBJECTIVES
from ppgen.inference.trainer import FIT_DEFAULTS


@pytest.mark.parametrize("name", ppgen.model_names())
def test_every_fit_default_is_an_option_of_the_trainer_or_the_objective(name):
    cls = ppgen.get(name)
    valid = set(FIT_DEFAULTS) | set(OBJECTIVES[cls.objective].defaults)
    assert set(cls.fit_defaults) <= valid, sorted(set(cls.fit_defaults) - valid)


def test_an_unknown_fit_option_names_the_valid_ones():
    ppgen.seed_everything(0)
    data = ppgen.data.from_tensor(torch.randint(0, 2, (32, 4)).float(), kind="binary")
    m = ppgen.create("fvsbn", data)
    with pytest.raises(PPGenError, match="unknown option 'clip_nrom'.*valid options: .*clip_norm.*epochs"):
        ppgen.fit(m, data, epochs=1, clip_nrom=1.0, progress=False)


def test_given_options_override_model_defaults_which_override_objective_defaults():
    m = ppgen.create("realnvp", DataSpec("continuous", (2,)), num_layers=1, hidden_dims=(4,))
    objective = OBJECTIVES["annealed-elbo"](m, lr=1e-3)
    assert objective.options["lr_decay"] == type(m).fit_defaults["lr_decay"] != 0.95  # the model's
    assert objective.options["weight_decay"] == 0.0 and "weight_decay" not in type(m).fit_defaults
    assert OBJECTIVES["annealed-elbo"](m, lr=1e-3, lr_decay=0.5).options["lr_decay"] == 0.5


@pytest.mark.filterwarnings("ignore:Detected call of")  # no optimizer step is taken here
def test_the_schedule_decays_every_epoch_to_its_floor_for_any_objective():
    m = ppgen.create("nade", DataSpec("binary", (4,)), hidden=4)
    objective = ELBOObjective(m, lr=1.0, lr_decay=0.5, min_lr_fraction=0.2)
    assert [objective.end_epoch()["lr"] for _ in range(4)] == pytest.approx([0.5, 0.25, 0.2, 0.2])
    resumed = ELBOObjective(ppgen.create("nade", DataSpec("binary", (4,)), hidden=4), lr=1.0, lr_decay=0.5)
    resumed.load_state_dict(objective.state_dict())
    assert resumed.optimizers["adam"].param_groups[0]["lr"] == pytest.approx(0.2)
    assert resumed.lr_steps == 4 and ELBOObjective(m, lr=1.0).end_epoch() == {}  # constant: no log


def test_the_denoising_schedule_is_per_step_and_halves_every_1800_steps():
    ppgen.seed_everything(0)
    m = ppgen.create("ddpm", DataSpec("continuous", (2,)), timesteps=10, hidden=8, blocks=1)
    objective = DenoisingObjective(m, lr=1e-3)
    x = torch.randn(16, 2)
    rates = [objective.step(x, None)["lr"] for _ in range(3)]
    assert rates == pytest.approx([1e-3 * 0.999615**k for k in (1, 2, 3)], rel=1e-12)
    assert 0.999615**1800 == pytest.approx(0.5, abs=1e-3)  # the default halves the rate every 1,800 steps
