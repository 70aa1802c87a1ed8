"""The NumPyro twin of the VAEs (ppgen.models.vae_numpyro) and NUTS on it against Pyro's NUTS."""

import numpy as np
import pyro
import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.seed import seed_everything

CASES = [
    ("vae", DataSpec("binary", (1, 3, 3)), {}),
    ("vae", DataSpec("categorical:4", (5,)), {"prior": "standard"}),
    ("vae", DataSpec("continuous", (3,)), {}),
    ("vae", DataSpec("continuous", (3,)), {"decoder_scale": "diagonal", "prior": "standard"}),
    ("vae", DataSpec("continuous", (3,)), {"decoder_scale": "isotropic", "hidden": ()}),
    ("iwae", DataSpec("binary", (6,)), {}),
    ("cvae", DataSpec("binary", (6,), num_classes=3), {}),
    ("vae-iaf", DataSpec("binary", (6,)), {"dropout": 0.1}),
]


def data_for(spec: DataSpec, n: int) -> torch.Tensor:
    if spec.kind == "continuous":
        return torch.randn(n, *spec.event_shape)
    return torch.randint(spec.num_categories, (n, *spec.event_shape)).float()


@pytest.mark.parametrize(
    "name, spec, config", CASES, ids=[f"{c[0]}-{c[1].kind}-{i}" for i, c in enumerate(CASES)]
)
def test_twin_log_joint_equals_pyro(name, spec, config):
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    seed_everything(0)
    m = ppgen.create(name, spec, latent_dim=2, hidden=config.pop("hidden", (8, 8)), **config).eval()
    x = data_for(spec, 5)
    y = torch.randint(spec.num_classes, (5,)) if spec.num_classes else None
    z = torch.randn(5, 2)
    with torch.no_grad():
        trace = pyro.poutine.trace(pyro.poutine.condition(m.model, {"z": z})).get_trace(x, y)
        want = float(trace.log_prob_sum())
    args = (jnp.asarray(x.numpy() if spec.kind != "categorical:4" else x.numpy().astype(np.int32)),)
    if y is not None:
        args += (jnp.asarray(y.numpy()),)
    got, _ = log_density(m.numpyro_model(), args, {}, {"z": jnp.asarray(z.numpy())})
    assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-3)


def test_twin_refuses_what_it_cannot_mirror():
    m = ppgen.create("vae", DataSpec("binary", (4,)), latent_dim=2, hidden=(8,), dropout=0.2)
    with pytest.raises(PPGenError, match="eval mode"):
        m.numpyro_model()
    from ppgen.inference.posterior import nuts_backend

    assert nuts_backend(m.eval()) == "numpyro"
    flows = ppgen.create("nade", DataSpec("binary", (4,)))
    with pytest.raises(PPGenError, match="no NumPyro twin"):
        nuts_backend(flows, "numpyro")
    with pytest.raises(PPGenError, match="unknown NUTS backend"):
        nuts_backend(m, "stan")


def small_vae(spec: DataSpec, **config):
    r"""A VAE with L = 2 whose decoder weights are scaled up, so that p(z | x) is far from the prior."""
    seed_everything(0)
    m = ppgen.create("vae", spec, latent_dim=2, hidden=(16,), **config).eval()
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.mul_(3.0)
    return m


def agree(model, x, num_samples: int, warmup: int, chains: int = 2):
    r"""Posterior means of z by Pyro's and NumPyro's NUTS: |difference| / its Monte Carlo standard error,
    the error from ArviZ's bulk ESS of each run, per coordinate."""
    import arviz as az

    from ppgen.inference.posterior import nuts_posterior

    runs = [
        nuts_posterior(
            model, x, num_samples=num_samples, warmup_steps=warmup, num_chains=chains, seed=0, backend=b
        )
        for b in ("pyro", "numpyro")
    ]
    means = [r.posterior["z"].mean(("chain", "draw")).values for r in runs]
    var = [
        r.posterior["z"].var(("chain", "draw")).values / az.ess(r, var_names=["z"])["z"].values for r in runs
    ]
    return np.abs(means[0] - means[1]) / np.sqrt(var[0] + var[1]), runs


@pytest.mark.slow  # ~20 CPU s: NumPyro compiles NUTS (~15 s); the log-joint tests above are the fast check
def test_numpyro_nuts_agrees_with_pyro_nuts_fast():
    m = small_vae(DataSpec("binary", (16,)), prior="standard")
    x = (torch.rand(1, 16) < 0.5).float()
    z, runs = agree(m, x, num_samples=150, warmup=100, chains=1)
    assert runs[1].posterior["z"].shape == runs[0].posterior["z"].shape == (1, 150, 1, 2)
    assert (z < 3).all(), z


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_numpyro_nuts_agrees_with_pyro_nuts(kind):
    spec = DataSpec(kind, (16,))
    m = small_vae(spec)  # the VampPrior
    x = data_for(spec, 1)
    z, _ = agree(m, x, num_samples=500, warmup=300)
    assert (z < 3).all(), z
