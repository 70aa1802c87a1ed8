"""`ppgen train path/to/file.py:NAME`: a user's program through the CLI, reloaded by eval, sample, inspect
and --resume; bad specs get one line and exit 2."""

import json
import textwrap

import pytest
import torch

from ppgen.app.cli import main

PROGRAM = textwrap.dedent(
    """
    import pyro, pyro.distributions as dist, torch
    from torch import nn
    import ppgen

    class VAE(nn.Module):
        def __init__(self, z_dim=2, hidden=16):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(2, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim))
            self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, 2))
            self.z_dim = z_dim

        def model(self, x):
            pyro.module("decoder", self.decoder)
            scale = pyro.param("scale", torch.ones(2), constraint=dist.constraints.positive)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.0).to_event(1))
                pyro.sample("obs", dist.Normal(self.decoder(z), scale).to_event(1), obs=x)

        def guide(self, x):
            pyro.module("encoder", self.encoder)
            with pyro.plate("data", x.shape[0]):
                loc, log_scale = self.encoder(x).chunk(2, -1)
                pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))

    vae = VAE()
    tutorial_vae = ppgen.program(vae.model, vae.guide, name="tutorial_vae")
    not_a_model = 3
    """
)


def ppgen(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def program_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_models.py"
    path.write_text(PROGRAM)
    return path


@pytest.mark.slow
def test_train_eval_sample_inspect_resume_on_a_program_file(program_file, tmp_path, capsys):
    run = tmp_path / "run"
    spec = f"{program_file}:tutorial_vae"
    assert (
        ppgen(
            "train", spec, "--data", "rings8", "--epochs", "1", "--num-samples", "20", "--out", run, "--quiet"
        )
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    assert config["source"] == spec and config["model"] == spec
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "tutorial_vae" and metrics["test_nll_kind"] == "iwae-20"
    capsys.readouterr()
    assert ppgen("eval", run, "--num-samples", "20", "--json") == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_nll_nats"] == pytest.approx(
        metrics["test_nll_nats"], abs=1e-6
    )  # same weights, seed
    assert ppgen("sample", run, "-n", "5", "--out", tmp_path / "s.pt") == 0
    assert torch.load(tmp_path / "s.pt").shape == (5, 2)
    inspect = ["--index", 3, "--num-samples", 30, "--warmup", 20, "--gap-samples", 100, "--gap-steps", 10]
    assert ppgen("inspect", run, *inspect) == 0
    text = capsys.readouterr().out
    assert "latent sites latent (2,)" in text and "PSIS k-hat" in text and "latent[1]" in text
    import arviz as az

    idata = az.from_netcdf(str(run / "inspect" / "inspect_3.nc"))
    assert idata.posterior["latent"].shape == (2, 30, 1, 2)
    assert idata.guide_posterior["latent"].shape == (1, 30, 1, 2)
    assert {"diverging"} <= set(idata.sample_stats) and "x" in idata.observed_data
    assert all((run / "inspect" / f).stat().st_size > 0 for f in ("pair.png", "posterior.png"))
    assert (
        ppgen(
            "train",
            spec,
            "--data",
            "rings8",
            "--epochs",
            "2",
            "--num-samples",
            "20",
            "--out",
            run,
            "--resume",
            "--quiet",
        )
        == 0
    )
    log = (run / "train_log.csv").read_text().strip().splitlines()
    assert len(log) == 3  # header + epochs 1 and 2


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("missing.py:tutorial_vae", "not found"),
        ("{file}:nothing", "defines no 'nothing'"),
        ("{file}:not_a_model", "is a int; expected path/to/file.py:NAME"),
        ("{file}:1abc", "not a Python name"),
    ],
)
def test_bad_program_specs_exit_2_with_one_line(program_file, tmp_path, capsys, spec, fragment):
    code = ppgen(
        "train", spec.format(file=program_file), "--data", "digits", "--epochs", "1", "--out", tmp_path / "r"
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "r").exists()


def test_a_program_file_that_fails_to_import_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("import not_a_module_anywhere\n")
    assert ppgen("train", f"{bad}:m", "--data", "digits", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "importing" in err[0] and "ModuleNotFoundError" in err[0]


def test_compare_takes_a_program_spec_beside_builtin_models(program_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    spec = f"{program_file}:tutorial_vae"
    assert (
        ppgen(
            "compare",
            "--data",
            "rings8",
            "--models",
            f"independent,{spec}",
            "--budget-seconds",
            1,
            "--out",
            out,
            "--quiet",
        )
        == 0
    )
    rows = json.loads((out / "report.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert {r["model"] for r in rows} == {"independent", "tutorial_vae"}
    assert all("error" not in r for r in rows), rows
