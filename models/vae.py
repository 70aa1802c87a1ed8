"""Variational autoencoders: a latent Gaussian z, a decoder p(x | z) of the data kind, an amortized q(z | x).

One base class, :class:`VAE`, holds the Pyro model and guide, with the VampPrior (a mixture of the guide's
posteriors at learned pseudo-inputs, the default) or N(0, I) as the prior; the variants change one thing each:
:class:`IWAE` the training bound (K-sample importance weighted), :class:`CVAE` the conditioning on a
label y, :class:`IAFVAE` the guide (refined by inverse autoregressive flows). ``log_prob`` is the ELBO
(a lower bound), ``estimate_log_prob`` the IWAE-K estimate of log p(x) (``ppgen.estimators.importance``).

References:
    | Auto-Encoding Variational Bayes (Kingma & Welling, 2013) https://arxiv.org/abs/1312.6114
    | Importance Weighted Autoencoders (Burda et al., 2015) https://arxiv.org/abs/1509.00519
    | Learning Structured Output Representation using Deep Conditional Generative Models (Sohn et al., 2015)
    | Improving Variational Inference with Inverse Autoregressive Flow (Kingma et al., 2016) https://arxiv.org/abs/1606.04934
    | VAE with a VampPrior (Tomczak & Welling, 2018) https://arxiv.org/abs/1705.07120
"""

import math
from typing import ClassVar

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import Permute, conditional_affine_autoregressive
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import Tensor, nn
from torch.distributions import kl_divergence

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.estimators.importance import ImportanceWeightedELBO, elbo_estimate, log_marginal
from ppgen.graph.dag import variable_names
from ppgen.likelihoods import factorized, factorized_params_shape
from ppgen.likelihoods.vamp_prior import VampPrior
from ppgen.nn.mlp import mlp

__all__ = ["VAE", "IWAE", "CVAE", "IAFVAE", "encoder_input", "likelihood_mean"]

SCALES = ("conditional", "diagonal", "isotropic")
PRIORS = ("vamp", "standard")
MIN_LOG_SCALE = -9.0


def encoder_input(spec, x: Tensor, dtype: torch.dtype) -> Tensor:
    r"""x (B, *event_shape) -> (B, D) in ``dtype``: binary and categorical levels mapped to [-1, 1]."""
    flat = x.reshape(x.shape[0], -1).to(dtype)
    k = spec.num_categories
    return flat if not k else 2 * flat / (k - 1) - 1


def likelihood_mean(spec, params: Tensor) -> Tensor:
    r"""The mean of the factorized likelihood that ``params`` (*batch, *factorized_params_shape) parameterize,
    (*batch, *event_shape): pixel probabilities, expected levels or Normal locations."""
    if spec.kind == "binary":
        return torch.sigmoid(params)
    if spec.base_kind == "categorical":
        levels = torch.arange(spec.num_categories, dtype=params.dtype, device=params.device)
        return params.softmax(-1) @ levels
    return params.unbind(-len(spec.event_shape) - 1)[0]


@register
class VAE(GenerativeModel):
    r"""p(x) = int p(z) p(x | z) dz with a neural decoder, fit by the ELBO with a Normal guide.

    Model: z ~ p(z), the VampPrior (1/K) sum_k q(z | u_k) or N(0, I_L); x | z ~ a product of Bernoulli
    (binary), categorical (categorical:K) or Normal (continuous) factors whose parameters the decoder outputs.
    Guide: q(z | x) = N(mu(x), diag sigma(x)^2),
    reparameterized. Training minimises ``elbo().differentiable_loss`` (analytic KL with
    ``TraceMeanField_ELBO`` for the N(0, I) prior, else the Monte Carlo ``Trace_ELBO``), and the weights
    evaluated are an exponential moving average of the iterates (``fit_defaults["ema_decay"]``).

    Arguments:
        spec: the data spec.
        latent_dim: L, the dimension of z (default: the class's ``default_latent_dim``, 8; 16 for ``iwae``).
        hidden: the encoder's hidden widths (the decoder uses them reversed); () gives linear maps, so
            that with ``decoder_scale="isotropic"`` on continuous data the model is probabilistic PCA.
        prior: "vamp" (the class's ``default_prior``; cvae: "standard") or "standard" (N(0, I)).
        pseudo_inputs: K, the VampPrior's number of pseudo-inputs.
        analytic_kl: KL(q || p) in closed form (``TraceMeanField_ELBO``) instead of sampled (``Trace_ELBO``);
            only for the standard prior, and its default there.
        decoder_scale: for continuous data, the Normal scale is output by the decoder ("conditional"),
            one parameter per dimension ("diagonal") or one shared parameter ("isotropic").
        elbo_samples: the draws averaged by :meth:`log_prob`.
        dropout: dropout after each hidden layer of both networks while training (a regularizer for small
            data sets; evaluation and sampling run in eval mode, without it).

    Example:
        >>> import ppgen, torch
        >>> m = ppgen.create("vae", ppgen.data.DataSpec("binary", (1, 3, 3)), latent_dim=2, hidden=(8,))
        >>> m.log_prob(torch.ones(4, 1, 3, 3)).shape
        torch.Size([4])
    """

    name = "vae"
    family = "latent-variable"
    density = "lower-bound"
    # digits, 300 examples held out of train: the validation IWAE-1000 is lowest at 300-400 epochs
    # (16.27-16.36 over two seeds; 16.69 with N(0, I) and no average); test 16.29-16.40 over seeds 0-2.
    fit_defaults = {"epochs": 350, "batch_size": 128, "lr": 1e-3, "ema_decay": 0.998}
    # quick mode (benchmarks/quick_presets.py): digits validation IWAE-100 NLL 18.88 in 16 CPU s (80 epochs;
    # at 40 epochs 22.1; lr 3e-3 with a 0.99 average 25.2; N(0, I) prior, lr 2e-3, no average: 19.01)
    quick_presets = {"digits": {"config": {}, "fit": {"epochs": 80}}}
    default_latent_dim: ClassVar[int] = 8
    default_prior: ClassVar[str] = "vamp"
    latent_site = "z"
    completion = "latent-mcmc"

    def __init__(
        self,
        spec,
        latent_dim: int | None = None,
        hidden: tuple = (200, 200),
        prior: str | None = None,
        pseudo_inputs: int = 50,
        analytic_kl: bool | None = None,
        decoder_scale: str = "conditional",
        elbo_samples: int = 16,
        dropout: float = 0.0,
    ):
        super().__init__(spec)
        latent_dim = latent_dim if latent_dim is not None else self.default_latent_dim
        if latent_dim < 1 or any(h < 1 for h in hidden):
            raise PPGenError(
                f"{self.name}: latent_dim and hidden widths must be positive, "
                f"got {latent_dim} and {tuple(hidden)}"
            )
        if not 0 <= dropout < 1:
            raise PPGenError(f"{self.name}: dropout must be in [0, 1), got {dropout}")
        if decoder_scale not in SCALES:
            raise PPGenError(
                f"{self.name}: decoder_scale must be one of {', '.join(SCALES)}, got {decoder_scale!r}"
            )
        prior = prior or self.default_prior
        if prior not in PRIORS:
            raise PPGenError(f"{self.name}: prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if prior == "vamp" and analytic_kl:
            raise PPGenError(
                f"{self.name}: the VampPrior has no closed-form KL; analytic_kl=True needs prior='standard'"
            )
        if prior == "vamp" and self.conditional:
            raise PPGenError(
                f"{self.name}: the VampPrior's pseudo-inputs are unlabelled, so it cannot condition on y; "
                "use prior='standard'"
            )
        if prior == "vamp" and pseudo_inputs < 1:
            raise PPGenError(f"{self.name}: the VampPrior needs pseudo_inputs >= 1, got {pseudo_inputs}")
        analytic_kl = prior == "standard" if analytic_kl is None else analytic_kl
        self.latent_dim, self.hidden = latent_dim, tuple(hidden)
        self.analytic_kl, self.elbo_samples = analytic_kl, elbo_samples
        self.params_shape = factorized_params_shape(spec)
        self.shared_scale = spec.kind == "continuous" and decoder_scale != "conditional"
        context = self.context_dim()
        self.features = mlp(
            spec.dim + context, self.hidden, dropout=dropout
        )  # (B, H): also the IAF's context
        self.feature_dim = self.hidden[-1] if self.hidden else spec.dim + context
        self.to_posterior = nn.Linear(self.feature_dim, 2 * latent_dim)
        out = spec.dim if self.shared_scale else math.prod(self.params_shape)
        self.decoder = mlp(latent_dim + context, tuple(reversed(self.hidden)), out, dropout=dropout)
        if self.shared_scale:
            self.log_scale = nn.Parameter(torch.zeros(spec.dim if decoder_scale == "diagonal" else 1))
        self.register_buffer("prior_loc", torch.zeros(latent_dim))
        self.register_buffer("prior_scale", torch.ones(latent_dim))
        self.vamp = (
            VampPrior(pseudo_inputs, spec.dim, bounded=spec.kind != "continuous") if prior == "vamp" else None
        )

    # --- conditioning (CVAE overrides) ---------------------------------------------------------------
    def context_dim(self) -> int:
        return 0

    def context(self, y: Tensor | None, batch_shape: torch.Size) -> Tensor | None:
        r"""The features of the label that the networks see, (*batch_shape, C), or None."""
        return None

    def _with_context(self, h: Tensor, y: Tensor | None) -> Tensor:
        c = self.context(y, h.shape[:-1])
        return h if c is None else torch.cat([h, c], dim=-1)

    # --- networks -------------------------------------------------------------------------------------
    def encoder_input(self, x: Tensor) -> Tensor:
        r"""x (B, *event_shape) -> (B, D): binary and categorical levels mapped to [-1, 1]."""
        return encoder_input(self.spec, x, self.prior_loc.dtype)

    def posterior_params(self, x: Tensor, y: Tensor | None = None) -> dict:
        r"""The guide's parameters for each example: ``loc``, ``scale`` (B, L) and ``features`` (B, H)."""
        return self.encoded_params(self.encoder_input(x), y)

    def encoded_params(self, inputs: Tensor, y: Tensor | None = None) -> dict:
        r"""As :meth:`posterior_params`, from the encoder's inputs (B, D) (such as the VampPrior's
        pseudo-inputs)."""
        h = self.features(self._with_context(inputs, y))
        loc, pre_scale = self.to_posterior(h).chunk(2, dim=-1)
        return {"loc": loc, "scale": nn.functional.softplus(pre_scale) + 1e-5, "features": h}

    def posterior_from_params(self, params: dict) -> dist.TorchDistribution:
        r"""q(z | x) from its local parameters: batch (B,), event (L,)."""
        return dist.Normal(params["loc"], params["scale"]).to_event(1)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> dist.TorchDistribution:
        r"""The amortized guide q(z | x) as a distribution with batch (B,) and event (L,)."""
        return self.posterior_from_params(self.posterior_params(x, y))

    def prior(self) -> dist.TorchDistribution:
        r"""p(z), event (L,): the VampPrior's mixture or N(0, I)."""
        if self.vamp is not None:
            return self.vamp(self.encoded_params)
        return dist.Normal(self.prior_loc, self.prior_scale).to_event(1)

    def decoder_params(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""z (*batch, L) -> the factorized likelihood's parameters (*batch, *factorized_params_shape)."""
        out = self.decoder(self._with_context(z, y))
        batch = z.shape[:-1]
        if not self.shared_scale:
            params = out.reshape(*batch, *self.params_shape)
            if self.spec.kind == "continuous":
                n = len(self.spec.event_shape)
                loc, log_scale = params.unbind(-n - 1)
                params = torch.stack([loc, log_scale.clamp_min(MIN_LOG_SCALE)], dim=-n - 1)
            return params
        loc = out.reshape(*batch, *self.spec.event_shape)
        log_scale = (
            self.log_scale.clamp_min(MIN_LOG_SCALE)
            .reshape(self.spec.event_shape if self.log_scale.numel() > 1 else ())
            .expand_as(loc)
        )
        return torch.stack([loc, log_scale], dim=-len(self.spec.event_shape) - 1)

    def likelihood(self, z: Tensor, y: Tensor | None = None) -> dist.TorchDistribution:
        r"""p(x | z) with batch shape z.shape[:-1] and event shape ``spec.event_shape``."""
        return factorized(self.spec, self.decoder_params(z, y))

    # --- the Pyro program -----------------------------------------------------------------------------
    def model(self, x=None, y=None):
        n = x.shape[0] if x is not None else (y.shape[0] if y is not None else 1)
        with pyro.plate("data", n):
            z = pyro.sample("z", self.prior())
            return pyro.sample("x", self.likelihood(z, y), obs=x)

    def guide(self, x=None, y=None):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.posterior(x, y))

    def initialize(self, data) -> None:
        r"""The VampPrior's pseudo-inputs start at K random training examples (once)."""
        if self.vamp is not None and not bool(self.vamp.initialized):
            chosen = torch.randperm(len(data.x))[: self.vamp.pseudo_inputs.shape[0]]
            self.vamp.initialize(self.encoder_input(data.x[chosen].to(self.prior_loc.device)))

    def elbo(self) -> pyro.infer.ELBO:
        return (
            TraceMeanField_ELBO(max_plate_nesting=1) if self.analytic_kl else Trace_ELBO(max_plate_nesting=1)
        )

    def training_loss(self, x, y=None):
        r"""-ELBO summed over the batch, as :meth:`elbo` computes it (one reparameterized draw of z; the
        analytic KL with ``analytic_kl``), running the guide and then the model in Pyro's order so that
        the random draws (and dropout masks) are the same."""
        q = self.posterior(x, y)  # the guide
        z = q.rsample()
        prior = self.prior()
        log_lik = self.likelihood(z, y).log_prob(x)  # (B,)
        kl = kl_divergence(q, prior) if self.analytic_kl else q.log_prob(z) - prior.log_prob(z)
        return (kl - log_lik).sum()

    # --- densities, samples, latent space -------------------------------------------------------------
    def log_prob(self, x: Tensor, y: Tensor | None = None, num_samples: int | None = None) -> Tensor:
        r"""The ELBO per example (B,) nats, averaged over ``num_samples`` (default ``elbo_samples``)
        draws: <= log p(x)."""
        x = self.check_input(x)
        y = self.check_labels(y, x.shape[0])
        return elbo_estimate(self.model, self.guide, x, y, num_samples=num_samples or self.elbo_samples)

    @torch.no_grad()
    def estimate_log_prob(self, x: Tensor, num_samples: int = 1000, y: Tensor | None = None) -> Tensor:
        r"""The IWAE-K estimate of log p(x), (B,) nats, with K = ``num_samples`` guide draws (batched)."""
        x = self.check_input(x)
        y = self.check_labels(y, x.shape[0])
        return log_marginal(self.model, self.guide, x, y, num_samples=num_samples)

    def observed_log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor | None:
        r"""The MIWAE bound on log p(x_o), (B,): log (1/K) sum_k p(x_o | z_k) p(z_k) / q(z_k | x~), z_k ~
        q(z | x~), with x~ the data with missing entries (NaN) set to zero and p(x_o | z) the likelihood of
        the observed entries only (Mattei & Frellsen, 2019, arXiv:1812.02633). None for conditional models."""
        if self.conditional:
            return None
        observed = ~torch.isnan(x)
        filled = torch.nan_to_num(x)
        q = self.posterior(filled)
        z = q.rsample((num_samples,))  # (K, B, L)
        per_dim = self.likelihood(z).base_dist.log_prob(filled.expand(num_samples, *filled.shape))
        log_obs = torch.where(observed, per_dim, torch.zeros_like(per_dim)).flatten(2).sum(-1)  # (K, B)
        log_w = log_obs + self.prior().log_prob(z) - q.log_prob(z)
        return log_w.logsumexp(0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        z = self.prior().sample((n,))
        return (
            self.likelihood(z, self.labels_or_uniform(n, y)).sample().to(z.dtype)
        )  # categorical draws are integers

    @torch.no_grad()
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The guide's mean E_q[z | x], (B, L)."""
        return self.posterior_params(self.check_input(x), self.check_labels(y, x.shape[0]))["loc"]

    @torch.no_grad()
    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The mean of p(x | z), (B, *event_shape): pixel probabilities, expected levels or locations."""
        return likelihood_mean(self.spec, self.decoder_params(z, y))

    def numpyro_model(self):
        r"""The NumPyro twin of :meth:`model` with this model's current weights
        (``ppgen.models.vae_numpyro``): what ``ppgen inspect --backend numpyro`` runs NUTS on."""
        from ppgen.models.vae_numpyro import numpyro_model

        return numpyro_model(self, MIN_LOG_SCALE)

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_node("z")
        g.add_edges_from(("z", v) for v in variable_names(self.spec.dim))
        return g


@register
class IWAE(VAE):
    r"""The VAE trained on the K-sample importance-weighted bound (Renyi alpha = 0), tighter than the ELBO.

    With K samples the bound is tighter, so the networks fit the data more closely and also overfit a
    small training set sooner. On digits (1,437 examples), with 300 examples held out of the training
    split and the N(0, I) prior, K = 30 with weight decay 3e-4 reached 16.47 (at 400 epochs) against
    16.59 for K = 10. With the VampPrior and the weight average it reached 16.17-16.20 at 100-150 epochs
    and then overfit (16.5 at 200); the test split gave 15.99-16.07 over seeds 0-2 at 150 epochs.

    Arguments:
        particles: K, the importance samples per example in the training bound.
        config: the :class:`VAE` arguments.

    References:
        | Importance Weighted Autoencoders (Burda et al., 2016), arXiv:1509.00519
    """

    name = "iwae"
    fit_defaults = {**VAE.fit_defaults, "epochs": 150, "weight_decay": 3e-4}
    # quick mode (benchmarks/quick_presets.py): digits validation IWAE-100 NLL 17.05 in 31 CPU s (K = 10)
    quick_presets = {"digits": {"config": {"particles": 10}, "fit": {"epochs": 80}}}
    # the tighter bound uses more latent dimensions: L = 8 gave 16.70 on validation, L = 16 16.47 (N(0, I)
    # prior)
    default_latent_dim = 16

    def __init__(self, spec, particles: int = 30, **config):
        super().__init__(spec, **config)
        if particles < 1:
            raise PPGenError(f"{self.name}: particles must be a positive integer, got {particles}")
        self.particles = particles

    def elbo(self) -> pyro.infer.ELBO:
        return ImportanceWeightedELBO(alpha=0.0, num_particles=self.particles, max_plate_nesting=1)

    def training_loss(self, x, y=None):
        return None  # the K-sample bound is traced (ImportanceWeightedELBO)


@register
class CVAE(VAE):
    r"""p(x | y) = int N(z; 0, I) p(x | z, y) dz with q(z | x, y): the label is an input of both networks.

    ``sample(n)`` without labels draws them uniformly over the classes.
    """

    name = "cvae"
    conditional = True
    fit_defaults = {
        "epochs": 500,
        "batch_size": 128,
        "lr": 1e-3,
    }  # no weight average: 14.09 with it on validation, 14.10 without
    quick_presets = {}  # conditional: -log p(x | y) is not ranked with the demo's NLLs
    # the label carries the class, z the style: L = 8 for 600 epochs gave 14.37 on digits, L = 16 13.98
    default_latent_dim = 16
    default_prior = "standard"  # the VampPrior's pseudo-inputs carry no label

    def __init__(self, spec, **config):
        if not spec.num_classes:
            raise PPGenError("cvae models p(x | y) and needs labelled data (a data set with num_classes)")
        super().__init__(spec, **config)

    def context_dim(self) -> int:
        return self.spec.num_classes

    def context(self, y, batch_shape):
        if y is None:
            raise PPGenError("cvae needs labels y, (B,) integers in [0, num_classes)")
        onehot = nn.functional.one_hot(y.long(), self.spec.num_classes).to(self.prior_loc.dtype)  # (B, C)
        return onehot.expand(*batch_shape, onehot.shape[-1])

    def graph(self):
        g = super().graph()
        g.add_edges_from(("y", v) for v in variable_names(self.spec.dim))
        return g


@register
class IAFVAE(VAE):
    r"""The VAE whose guide is N(mu(x), sigma(x)^2) pushed through inverse autoregressive flows.

    Each flow step is Pyro's conditional affine autoregressive transform (the stable, gated form of
    Kingma et al.), conditioned on the encoder's features h(x); the order of z is reversed between steps.
    The KL has no closed form, so training uses the Monte Carlo ``Trace_ELBO``.

    Arguments:
        flows: the number of IAF steps.
        flow_hidden: the hidden widths of each step's autoregressive network (default (4 L,)).
        config: the :class:`VAE` arguments (``analytic_kl`` must stay False). With the VampPrior, its
            components are the encoder's Normals at the pseudo-inputs, before the flows.
    """

    name = "vae-iaf"
    quick_presets = {}  # not inherited from VAE: tuned per class

    def __init__(
        self, spec, flows: int = 2, flow_hidden: tuple | None = None, analytic_kl: bool = False, **config
    ):
        if analytic_kl:
            raise PPGenError("vae-iaf: the IAF guide has no closed-form KL; analytic_kl must be False")
        super().__init__(spec, analytic_kl=False, **config)
        widths = list(flow_hidden or (4 * self.latent_dim,))
        self.flows = nn.ModuleList(
            conditional_affine_autoregressive(self.latent_dim, self.feature_dim, widths, stable=True)
            for _ in range(flows)
        )

    def posterior_from_params(self, params):
        base = dist.Normal(params["loc"], params["scale"]).to_event(1)
        h = params["features"]
        reverse = torch.arange(self.latent_dim - 1, -1, -1, device=h.device)
        transforms = []
        for i, flow in enumerate(self.flows):
            if i:
                transforms.append(Permute(reverse))
            transforms.append(flow.condition(h))
        return dist.TransformedDistribution(base, transforms)

    @torch.no_grad()
    def encode(self, x, y=None, num_samples: int = 64):
        r"""The guide's mean E_q[z | x] by Monte Carlo over ``num_samples`` draws, (B, L)."""
        q = self.posterior(self.check_input(x), self.check_labels(y, x.shape[0]))
        return q.sample((num_samples,)).mean(0)
