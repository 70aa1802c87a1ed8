"""Defaults by data kind: ``data_defaults`` per regime, chosen by ``create`` and recorded in the run."""

import inspect
import json

import pytest
import torch

import ppgen
from ppgen.app.cli import main
from ppgen.base import REGIMES, data_regime
from ppgen.data import DataSpec
from ppgen.inference.objective import OBJECTIVES
from ppgen.inference.trainer import FIT_DEFAULTS

BINARY_IMAGES = DataSpec("binary", (1, 3, 3))
POINTS = DataSpec("continuous", (2,))


def _constructor_options(cls) -> set:
    return {p for k in cls.__mro__ if "__init__" in vars(k) for p in inspect.signature(k.__init__).parameters}


@pytest.mark.parametrize("name", ppgen.model_names())
def test_every_regime_names_valid_config_and_fit_options(name):
    cls = ppgen.get(name)
    assert set(cls.data_defaults) <= set(REGIMES)
    valid_fit = set(FIT_DEFAULTS) | set(OBJECTIVES[cls.objective].defaults)
    for regime, chosen in cls.data_defaults.items():
        assert set(chosen) <= {"config", "fit"}, regime
        assert set(chosen.get("config", {})) <= _constructor_options(cls), regime
        assert set(chosen.get("fit", {})) <= valid_fit, regime


def test_the_regime_follows_kind_and_shape():
    assert data_regime(POINTS) == data_regime(DataSpec("binary", (64,))) == "points"
    assert data_regime(BINARY_IMAGES) == "binary-images"
    assert data_regime(DataSpec("categorical:17", (1, 8, 8))) == "gray-images"
    assert data_regime(DataSpec("continuous", (3, 4, 4))) == "gray-images"


@pytest.fixture
def mixture_with_image_defaults(monkeypatch):
    cls = ppgen.get("mixture")
    defaults = {"binary-images": {"config": {"components": 3}, "fit": {"epochs": 2, "lr": 0.05}}}
    monkeypatch.setattr(cls, "data_defaults", defaults)
    return cls


def test_create_lays_the_regime_under_the_given_config(mixture_with_image_defaults):
    m = ppgen.create("mixture", BINARY_IMAGES)
    assert m.config == {"components": 3} and m.defaults_regime == "binary-images"
    assert m.fit_defaults["epochs"] == 2 and m.fit_defaults["lr"] == 0.05
    assert m.fit_defaults["batch_size"] == mixture_with_image_defaults.fit_defaults["batch_size"]
    given = ppgen.create("mixture", BINARY_IMAGES, components=5)
    assert given.config == {"components": 5}
    other = ppgen.create("mixture", POINTS)  # no entry for points: the class defaults
    assert other.defaults_regime is None and other.config == {}
    assert other.fit_defaults == mixture_with_image_defaults.fit_defaults


def test_fit_reads_the_regime_fit_options(mixture_with_image_defaults):
    ppgen.seed_everything(0)
    data = ppgen.data.from_tensor(torch.randint(0, 2, (40, 1, 3, 3)).float(), kind="binary")
    m = ppgen.create("mixture", data)
    result = ppgen.fit(m, data, progress=False)
    assert result.log[-1]["epoch"] == 2


def test_the_run_records_which_defaults_it_used(mixture_with_image_defaults, tmp_path):
    x = torch.randint(0, 2, (60, 1, 3, 3)).float()
    torch.save(x, tmp_path / "x.pt")
    out = tmp_path / "run"
    assert (
        main(["train", "mixture", "--data", str(tmp_path / "x.pt"), "--kind", "binary", "--out", str(out)])
        == 0
    )
    record = json.loads((out / "config.json").read_text())
    assert record["defaults"] == "binary-images" and record["config"] == {"components": 3}
    assert main(["eval", str(out)]) == 0  # the recorded config rebuilds the same model
