"""The NumPyro twin of a trained VAE's model: the same prior, decoder and likelihood in JAX, for NUTS.

``numpyro_model(vae)`` copies the decoder's weights (a :func:`~ppgen.nn.mlp.mlp` of ``Linear`` and
``Softplus`` layers, dropout off as in evaluation) into JAX arrays and returns a NumPyro program that
mirrors :meth:`~ppgen.models.vae.VAE.model`: inside a plate "data" over the examples, z ~ p(z) (N(0, I), or
the VampPrior's mixture of the encoder's Normals at its pseudo-inputs, evaluated once in torch) and
x | z ~ the factorized likelihood of the data kind (Bernoulli logits, categorical logits, or Normal with
the log scale clamped below as the VAE clamps it), for the label's one-hot context in a CVAE. The weights are
a snapshot: a twin made before more training keeps the old ones.

NumPyro jit-compiles the whole NUTS trajectory, where Pyro's NUTS steps through Python at each leapfrog
step; ``benchmarks/numpyro_vs_pyro.py`` measures what that buys end to end. jax and numpyro are imported
inside the functions, so that importing the models does not load them.

References:
    | Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
    | (Phan et al., 2019) https://arxiv.org/abs/1912.11554
"""

import torch
from torch import nn

from ppgen.errors import PPGenError

__all__ = ["numpyro_model", "jax_mlp"]


def jax_mlp(net: nn.Sequential):
    r"""The JAX function of an ``nn.Sequential`` of ``Linear``, ``Softplus`` (beta 1) and ``Dropout`` layers
    (dropout is the identity, as in eval mode), with its weights copied: (*, in) -> (*, out) arrays.

    Raises:
        PPGenError: a layer of another kind (the twin would not compute the same function).
    """
    import jax
    import jax.numpy as jnp

    layers = []
    for layer in net:
        if isinstance(layer, nn.Linear):
            bias = None if layer.bias is None else jnp.asarray(layer.bias.detach().cpu().float().numpy())
            layers.append(("linear", jnp.asarray(layer.weight.detach().cpu().float().numpy().T), bias))
        elif isinstance(layer, nn.Softplus):
            if layer.beta != 1:
                raise PPGenError(f"the JAX twin supports Softplus(beta=1) only, got beta={layer.beta}")
            layers.append(("softplus", None, None))
        elif not isinstance(layer, nn.Dropout):
            raise PPGenError(f"the JAX twin has no {type(layer).__name__} layer")

    def forward(h):
        for kind, weight, bias in layers:
            if kind == "linear":
                h = h @ weight if bias is None else h @ weight + bias
            else:
                h = jax.nn.softplus(h)
        return h

    return forward


def _prior(vae):
    r"""p(z) as a NumPyro distribution with event (L,): the VampPrior's mixture evaluated in torch."""
    import jax.numpy as jnp
    import numpyro.distributions as nd

    with torch.no_grad():
        prior = vae.prior()
    if vae.vamp is None:
        loc = jnp.asarray(vae.prior_loc.detach().cpu().float().numpy())
        scale = jnp.asarray(vae.prior_scale.detach().cpu().float().numpy())
        return nd.Normal(loc, scale).to_event(1)
    loc = jnp.asarray(prior.loc.detach().cpu().float().numpy())  # (K, L)
    scale = jnp.asarray(prior.scale.detach().cpu().float().numpy())
    weights = nd.CategoricalLogits(jnp.asarray(prior.logits.detach().cpu().float().numpy()))
    return nd.MixtureSameFamily(weights, nd.Normal(loc, scale).to_event(1))


def numpyro_model(vae, min_log_scale: float = -9.0):
    r"""The NumPyro program of a trained :class:`~ppgen.models.vae.VAE` (or IWAE, CVAE, IAF-VAE: their
    models are the VAE's; the IAF changes only the guide).

    Arguments:
        vae: the model (its current weights are copied; call again after training further).
        min_log_scale: the clamp of the Normal likelihood's log scale (the VAE's ``MIN_LOG_SCALE``).

    Returns:
        ``model(x, y=None)``: x a JAX array (B, *event_shape) observed at site "x", y (B,) integer labels for
        a CVAE; the latent site "z" has shape (B, L), as in the Pyro program.

    Example:
        >>> import ppgen, numpyro, jax.numpy as jnp
        >>> from numpyro.infer.util import log_density
        >>> m = ppgen.create("vae", ppgen.data.DataSpec("binary", (4,)), latent_dim=2, hidden=(8,))
        >>> twin = numpyro_model(m)
        >>> lp, _ = log_density(twin, (jnp.ones((3, 4)),), {}, {"z": jnp.zeros((3, 2))})
        >>> lp.shape
        ()
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    spec = vae.spec
    if vae.training and any(isinstance(m, nn.Dropout) for m in vae.modules()):
        raise PPGenError("the NumPyro twin mirrors the model in eval mode: call .eval() first")
    decoder = jax_mlp(vae.decoder)
    prior = _prior(vae)
    shared = None
    if vae.shared_scale:
        shared = jnp.asarray(vae.log_scale.detach().cpu().float().numpy())
    event, n = tuple(spec.event_shape), len(spec.event_shape)
    params_shape = tuple(vae.params_shape)
    classes = vae.context_dim()

    def likelihood(z, y):
        h = z if not classes else jnp.concatenate([z, jnp.eye(classes, dtype=z.dtype)[y]], -1)
        out = decoder(h)
        batch = z.shape[:-1]
        if spec.kind == "binary":
            return nd.Bernoulli(logits=out.reshape(*batch, *event)).to_event(n)
        if spec.base_kind == "categorical":
            return nd.Categorical(logits=out.reshape(*batch, *params_shape)).to_event(n)
        if shared is None:
            params = out.reshape(*batch, *params_shape)
            loc, log_scale = jnp.moveaxis(params, -n - 1, 0)
        else:
            loc = out.reshape(*batch, *event)
            log_scale = jnp.broadcast_to(shared.reshape(event if shared.size > 1 else ()), loc.shape)
        return nd.Normal(loc, jnp.exp(jnp.maximum(log_scale, min_log_scale))).to_event(n)

    def model(x, y=None):
        if classes and y is None:
            raise PPGenError(f"{vae.name} is conditional: the NumPyro model needs labels y")
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", prior)
            return numpyro.sample("x", likelihood(z, y), obs=x)

    return model
