"""NUTS in NumPyro on a model's NumPyro twin: the draws ``ppgen.inference.posterior`` puts in InferenceData.

A model offers a twin by a ``numpyro_model()`` method returning a NumPyro program with the same sites as
its Pyro ``model`` (the VAEs do, ``ppgen.models.vae_numpyro``). NumPyro compiles the sampler with JAX,
so each chain runs without Python in the loop; jax and numpyro are imported here, when NUTS runs.

References:
    | The No-U-Turn Sampler (Hoffman & Gelman, 2011) https://arxiv.org/abs/1111.4246
    | Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
    | (Phan et al., 2019) https://arxiv.org/abs/1912.11554
"""

import numpy as np
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = ["has_numpyro_twin", "numpyro_nuts_draws"]


def has_numpyro_twin(model) -> bool:
    r"""Whether ``model`` offers a NumPyro twin of its program (a ``numpyro_model()`` method)."""
    return callable(getattr(model, "numpyro_model", None))


def numpyro_nuts_draws(
    model,
    x: Tensor,
    y: Tensor | None,
    sites: dict,
    num_samples: int,
    warmup_steps: int,
    num_chains: int,
    seed: int,
    max_tree_depth: int = 8,
) -> tuple[dict, np.ndarray]:
    r"""Posterior draws of the latent sites given x by NumPyro's NUTS on the model's twin.

    The settings mirror Pyro's in :func:`~ppgen.inference.posterior.nuts_posterior`: target acceptance
    0.8, a diagonal mass matrix, each chain started uniformly on [-2, 2] (unconstrained); the chains run
    one after another on one compiled sampler, from ``jax.random.PRNGKey(seed)`` split per chain.

    Arguments:
        model: a model with ``numpyro_model()``, in eval mode.
        x: (B, *event_shape); y: (B,) labels or None.
        sites: {latent site: event shape}, the sites to return.

    Returns:
        {site: (chain, draw, B, *event) float64 array}, and ``diverging`` (chain, draw) bool.
    """
    if not has_numpyro_twin(model):
        raise PPGenError(
            f"{getattr(model, 'name', type(model).__name__)} has no NumPyro twin (numpyro_model()); "
            "use the Pyro backend"
        )
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS, init_to_uniform

    twin = model.numpyro_model()
    values = x.detach().cpu().numpy()
    if model.spec.num_categories and model.spec.kind != "binary":
        values = values.astype(np.int32)
    args = (jnp.asarray(values),) + (() if y is None else (jnp.asarray(y.cpu().numpy().astype(np.int32)),))
    kernel = NUTS(
        twin,
        target_accept_prob=0.8,
        max_tree_depth=max_tree_depth,
        init_strategy=init_to_uniform(radius=2.0),
    )
    mcmc = MCMC(
        kernel,
        num_warmup=warmup_steps,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging",))
    samples = mcmc.get_samples(group_by_chain=True)
    draws = {name: np.asarray(samples[name], dtype=np.float64) for name in sites}
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"], dtype=bool)
    return draws, diverging
