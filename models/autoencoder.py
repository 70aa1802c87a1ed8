"""The deterministic autoencoder z = f(x), x_hat = g(z), fit by reconstruction: the VAE without its noise.

It has no density. To generate at all, :meth:`Autoencoder.sample` decodes codes drawn from a Gaussian
fitted to the training codes (mean and full covariance): nothing in the training pushed the codes
towards that Gaussian, so its draws land where no training code lies and decode to poor images, the
contrast with the VAE (whose prior is fitted by the ELBO) that the lecture notes draw.

References:
    | Reducing the Dimensionality of Data with Neural Networks (Hinton & Salakhutdinov, 2006), Science 313.
    | Auto-Encoding Variational Bayes (Kingma & Welling, 2013) https://arxiv.org/abs/1312.6114
"""

import math

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.graph.dag import variable_names
from ppgen.likelihoods import factorized, factorized_params_shape
from ppgen.models.vae import encoder_input, likelihood_mean
from ppgen.nn.mlp import mlp

__all__ = ["Autoencoder", "LOSSES"]

LOSSES = ("cross-entropy", "squared")


@register
class Autoencoder(GenerativeModel):
    r"""An MLP encoder z = f(x) and decoder x_hat = g(z) (the VAE's networks, no noise) fit by reconstruction.

    The decoder outputs the parameters of the data kind's factorized likelihood, as the VAE's does; the
    loss is either the cross-entropy -log p(x | g(f(x))) (binary, categorical) or the squared error
    ||x - x_hat||^2 with x_hat the likelihood's mean. Samples decode z ~ N(m, S), the Gaussian of the
    training codes, and are put in the data's support by rounding x_hat (binary: x_hat > 1/2).

    The code Gaussian is set by :meth:`initialize` (the codes of the initial encoder) and then by the
    ``reconstruction`` objective after every epoch (the moments of that epoch's codes), or by
    :meth:`fit_codes` on any data; never by ``log_prob``/``sample``.

    Arguments:
        spec: the data spec.
        latent_dim: L, the dimension of z.
        hidden: the encoder's hidden widths (the decoder uses them reversed).
        loss: "cross-entropy" (default for binary and categorical data) or "squared" (default, and the
            only choice, for continuous data).
        dropout: dropout after each hidden layer of both networks while training.

    Example:
        >>> import ppgen, torch
        >>> spec = ppgen.data.DataSpec("binary", (1, 3, 3))
        >>> m = ppgen.create("autoencoder", spec, latent_dim=2, hidden=(8,))
        >>> m.reconstruction_error(torch.ones(4, 1, 3, 3)).shape, m.sample(5).shape
        (torch.Size([4]), torch.Size([5, 1, 3, 3]))
    """

    name = "autoencoder"
    family = "latent-variable"
    density = "implicit"
    objective = "reconstruction"
    # digits, 20% of train held out: validation ||x - x_hat||^2 2.85 at 40 epochs, 2.77 at 80, 3.09 at 120,
    # 3.54 at 200 (it overfits: 0.08 on the fitted part at 200)
    fit_defaults = {"epochs": 80, "batch_size": 128, "lr": 1e-3}

    def __init__(
        self,
        spec,
        latent_dim: int = 8,
        hidden: tuple = (200, 200),
        loss: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(spec)
        loss = loss or ("squared" if spec.kind == "continuous" else "cross-entropy")
        if loss not in LOSSES:
            raise PPGenError(f"{self.name}: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if loss == "cross-entropy" and spec.kind == "continuous":
            raise PPGenError(
                f"{self.name}: the cross-entropy loss needs binary or categorical data; use 'squared'"
            )
        if latent_dim < 1 or any(h < 1 for h in hidden):
            raise PPGenError(f"{self.name}: latent_dim and hidden widths must be positive")
        self.latent_dim, self.hidden, self.loss = latent_dim, tuple(hidden), loss
        self.params_shape = factorized_params_shape(spec)
        if spec.kind == "continuous":  # the decoder outputs the mean only: no scale is learnt
            self.params_shape = tuple(spec.event_shape)
        self.encoder = mlp(spec.dim, self.hidden, latent_dim, dropout=dropout)
        self.decoder = mlp(
            latent_dim, tuple(reversed(self.hidden)), math.prod(self.params_shape), dropout=dropout
        )
        self.register_buffer("code_loc", torch.zeros(latent_dim))
        self.register_buffer("code_scale_tril", torch.eye(latent_dim))

    # --- the networks -------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.code_loc.dtype

    def codes(self, x: Tensor) -> Tensor:
        r"""z = f(x): (B, *event_shape) -> (B, L), differentiable."""
        return self.encoder(encoder_input(self.spec, x, self.dtype))

    def decoder_params(self, z: Tensor) -> Tensor:
        r"""z (B, L) -> the likelihood's parameters (B, *params_shape), differentiable."""
        return self.decoder(z).reshape(z.shape[0], *self.params_shape)

    def reconstruct_mean(self, params: Tensor) -> Tensor:
        r"""x_hat (B, *event_shape) from the decoder's parameters."""
        return params if self.spec.kind == "continuous" else likelihood_mean(self.spec, params)

    def reconstruction_loss(self, x: Tensor) -> Tensor:
        r"""The training loss per example, (B,), differentiable: cross-entropy (nats) or squared error."""
        params = self.decoder_params(self.codes(x))
        if self.loss == "cross-entropy":
            return -factorized(self.spec, params).log_prob(x)
        return (x - self.reconstruct_mean(params)).flatten(1).pow(2).sum(1)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        r"""z = f(x), (B, L)."""
        return self.codes(self.check_input(x))

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        r"""x_hat = g(z), (B, *event_shape): the decoder's mean (probabilities, expected levels or values)."""
        return self.reconstruct_mean(self.decoder_params(z))

    @torch.no_grad()
    def reconstruction_error(self, x: Tensor) -> Tensor:
        r"""||x - g(f(x))||^2 per example, (B,), in the data's units (levels for categorical data)."""
        x = self.check_input(x)
        return (x - self.decode(self.codes(x))).flatten(1).pow(2).sum(1)

    # --- the code Gaussian ----------------------------------------------------------------------------
    def set_codes(self, loc: Tensor, covariance: Tensor) -> None:
        r"""Sets the sampling Gaussian N(loc (L,), covariance (L, L)), with a small jitter on the diagonal."""
        jitter = 1e-6 * covariance.diagonal().mean().clamp_min(1e-6)
        eye = torch.eye(self.latent_dim, dtype=covariance.dtype, device=covariance.device)
        self.code_loc.copy_(loc)
        self.code_scale_tril.copy_(torch.linalg.cholesky(covariance + jitter * eye))

    @torch.no_grad()
    def fit_codes(self, x: Tensor, batch_size: int = 1000) -> None:
        r"""Fits the sampling Gaussian to the codes of x (N, *event_shape) by their mean and covariance."""
        was_training = self.training
        self.eval()
        z = torch.cat([self.codes(xb) for xb in self.check_input(x).split(batch_size)]).double()
        self.train(was_training)
        self.set_codes(z.mean(0), torch.cov(z.T, correction=0).reshape(self.latent_dim, self.latent_dim))

    def initialize(self, data) -> None:
        r"""The code Gaussian of the initial encoder on the training split (refitted each epoch)."""
        self.fit_codes(data.x.to(self.code_loc.device))

    def code_distribution(self) -> dist.TorchDistribution:
        r"""N(m, S), the Gaussian fitted to the training codes, event (L,)."""
        return dist.MultivariateNormal(self.code_loc, scale_tril=self.code_scale_tril)

    # --- the (implicit) Pyro program -----------------------------------------------------------------
    def model(self, x: Tensor | None = None, y=None, n: int | None = None) -> Tensor:
        r"""z ~ N(m, S); x = round(g(z)) at the deterministic site "x". A given x only sets the batch size."""
        n = x.shape[0] if x is not None else (n or 1)
        with pyro.plate("data", n):
            z = pyro.sample("z", self.code_distribution())
            return pyro.deterministic(
                "x", self.to_support(self.decode(z)), event_dim=len(self.spec.event_shape)
            )

    def to_support(self, x_hat: Tensor) -> Tensor:
        r"""x_hat (B, *event_shape) rounded into the data's support (continuous data unchanged)."""
        if self.spec.kind == "binary":
            return (x_hat > 0.5).to(x_hat.dtype)
        if self.spec.base_kind == "categorical":
            return x_hat.round().clamp(0, self.spec.num_categories - 1)
        return x_hat

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n samples (n, *event_shape): decoded draws of the code Gaussian, in the data's support."""
        return self.model(n=n).detach()

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        raise PPGenError(
            f"{self.name} has no density (implicit): it only reconstructs and samples; "
            "use reconstruction_error or sample-based metrics"
        )

    def evaluation_log_prob(self, x, y=None, num_samples: int = 1000):
        return None

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_node("z")
        g.add_edges_from(("z", v) for v in variable_names(self.spec.dim))
        return g
