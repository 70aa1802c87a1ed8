"""Bayesian CPTs by NUTS in NumPyro: a Dirichlet prior on every row, the posterior as ArviZ InferenceData."""

import math

import torch
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["fit_cpts_nuts", "set_posterior_mean"]


def fit_cpts_nuts(
    bn,
    x: Tensor,
    concentration: float = 1.0,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    seed: int = 0,
    progress: bool = False,
):
    r"""Samples the posterior of a Bayes net's CPTs given fully observed data, by NUTS.

    Every row of every CPT gets a Dirichlet(concentration) prior (site "cpt_<name>", shape (P, K)); the
    data are observed at the variables' sites of the NumPyro twin (``ppgen.graph.numpyro_twin``). The
    conjugate
    posterior is Dirichlet(concentration + counts), which the tests use to check the sampler.

    Arguments:
        bn: a :class:`~ppgen.graph.BayesNet` with dense CPTs (the structure; its CPT values are not used).
        x: (N, num variables) observed values.
        concentration: the Dirichlet prior's concentration per cell.
        num_warmup, num_samples, num_chains: NUTS settings (chains run sequentially on CPU).
        seed: the JAX PRNG seed.

    Returns:
        ``arviz.InferenceData`` with a posterior group holding "cpt_<name>" of shape (chain, draw, P, K).

    References:
        Hoffman and Gelman, The No-U-Turn Sampler (2011), arXiv:1111.4246.
    """
    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    from ppgen.graph.numpyro_twin import numpyro_program

    if concentration <= 0 or num_samples < 1 or num_warmup < 0 or num_chains < 1:
        raise PPGenError("need concentration > 0, num_samples >= 1, num_warmup >= 0 and num_chains >= 1")
    values = jnp.asarray(bn.check_values(x).cpu().numpy().astype(np.int32))
    model = numpyro_program(bn, bayesian=True, concentration=concentration)
    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=progress,
    )
    mcmc.run(jax.random.PRNGKey(seed), values)
    return az.from_numpyro(mcmc)


@torch.no_grad()
def set_posterior_mean(bn, idata) -> None:
    r"""Sets every CPT of ``bn`` to its posterior mean in ``idata`` (from :func:`fit_cpts_nuts`)."""
    for v in bn.variables:
        name = f"cpt_{v}"
        if name not in idata.posterior:
            raise PPGenError(f"{name} is not in the posterior")
        mean = torch.as_tensor(idata.posterior[name].mean(("chain", "draw")).values)
        rows = math.prod(bn.cards[u] for u in bn.parents(v))
        bn.set_table(v, mean.reshape(rows, bn.cards[v]))
