"""The demo's models and their quick presets: every listed model has one, and its options are accepted."""

import pytest
import torch

import ppgen
from ppgen.app.demo import DEMO_MODELS

CASES = [(data, name) for data, names in DEMO_MODELS.items() for name in names]


@pytest.mark.parametrize("data_name,name", CASES)
def test_demo_model_has_a_working_preset(data_name, name):
    preset = ppgen.get(name).quick_preset(data_name)
    assert preset is not None and set(preset) == {"config", "fit"}
    ppgen.seed_everything(0)
    train = ppgen.data.load(data_name, "train").select(torch.arange(256))
    model = ppgen.create(name, train, **preset["config"])
    options = {k: v for k, v in preset["fit"].items() if k != "epochs"}
    result = ppgen.fit(model, train, steps=1, progress=False, **options)  # a bad option raises PPGenError
    assert result.steps == 1


def test_subclasses_do_not_inherit_a_preset_tuned_for_their_parent():
    assert ppgen.get("vae").quick_preset("digits") != ppgen.get("iwae").quick_preset("digits")
    assert ppgen.get("cvae").quick_preset("digits") is None
    assert ppgen.get("vae-iaf").quick_preset("digits") is None
