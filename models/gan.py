"""Generative adversarial networks as implicit Pyro programs: gan, wgan-gp and dcgan share one base.

The generator is a Pyro program: z ~ N(0, I) at the sample site "z" inside the plate "data", and
x = G(z) recorded at the deterministic site "x". There is no density to score: ``log_prob`` raises
and ``evaluation_log_prob`` returns None. The discriminator (critic) is a module of the model; the
game itself is played by ``inference/adversarial.py``.

Data enter the networks standardised (:class:`~ppgen.nn.standardize.Standardize`): continuous data by
a per-dimension location and scale held as buffers (set from the training split by ``initialize``),
K-level data mapped to [-1, 1]. For discrete data the
generator outputs a level in [0, K - 1] which is rounded with a straight-through gradient, so the
discriminator sees samples in the data's own support.

References:
    | Generative Adversarial Networks (Goodfellow et al., 2014) https://arxiv.org/abs/1406.2661
    | Improved Training of Wasserstein GANs (Gulrajani et al., 2017) https://arxiv.org/abs/1704.00028
    | Unsupervised Representation Learning with Deep Convolutional GANs (Radford et al., 2015)
    | https://arxiv.org/abs/1511.06434
"""

from typing import ClassVar

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from ppgen.base import GenerativeModel, create, register
from ppgen.errors import PPGenError
from ppgen.nn.gan_nets import Generator, conv_discriminator, conv_generator, mlp_discriminator, mlp_generator
from ppgen.nn.standardize import Standardize

__all__ = ["GAN", "WGANGP", "DCGAN", "fixed_affine_gan"]

LOSSES = ("minimax", "non-saturating", "wasserstein-gp")


@register
class GAN(GenerativeModel):
    r"""A generator x = G(z), z ~ N(0, I), and a discriminator D(x) = sigmoid(logit) in a minimax game.

    The variants (``wgan-gp``, ``dcgan``) change only class-level defaults: the loss, the networks and
    the training options that :class:`~ppgen.inference.adversarial.AdversarialObjective` reads from
    ``fit_defaults``.

    Arguments:
        spec: the data spec.
        loss: "minimax" (G minimises E log(1 - D(G(z)))), "non-saturating" (G minimises -E log D(G(z)))
            or "wasserstein-gp" (a critic with gradient penalty); None: the variant's default.
        arch: "mlp" or "conv" (images only); None: the variant's default.
        latent_dim: the size of z; None: min(64, max(m, D // 2)) with m the variant's ``min_latent_dim``.
        hidden: the width of the MLPs; None: the variant's default.
        layers: the depth of the MLPs.
        channels: the width of the DCGAN convolutions.
        conditional: model p(x | y) with label embeddings (needs data with labels).
        embed_dim: the size of the generator's label embedding.
        fourier: octaves of Fourier input features of the MLP discriminator (see
            :class:`~ppgen.nn.fourier.FourierFeatures`); None: the variant's default for data of
            dimension <= 4, else 0.
        d_hidden: the width of the MLP discriminator; None: the variant's default, else ``hidden``.

    Example:
        >>> import ppgen, torch
        >>> m = ppgen.create("gan", ppgen.data.DataSpec("continuous", (2,)))
        >>> m.sample(5).shape
        torch.Size([5, 2])
    """

    name = "gan"
    family = "adversarial"
    density = "implicit"
    objective = "adversarial"
    completion = "latent-fit"
    kinds = ("binary", "categorical", "continuous")
    losses: ClassVar[tuple] = ("minimax", "non-saturating")
    default_loss: ClassVar[str] = "non-saturating"
    default_arch: ClassVar[str] = "mlp"
    default_hidden: ClassVar[int] = 128
    min_latent_dim: ClassVar[int] = 8
    default_fourier: ClassVar[int] = 0
    default_d_hidden: ClassVar[int | None] = None
    fit_defaults = {
        "epochs": 200,
        "batch_size": 256,
        "lr": 1e-3,
        "d_steps": 1,
        "d_lr_scale": 2.0,
        "betas": (0.5, 0.9),
        "gp_weight": 0.0,
        "lr_decay": 0.985,
    }

    def __init__(
        self,
        spec,
        loss: str | None = None,
        arch: str | None = None,
        latent_dim: int | None = None,
        hidden: int | None = None,
        layers: int = 3,
        channels: int = 32,
        conditional: bool = False,
        embed_dim: int = 16,
        fourier: int | None = None,
        d_hidden: int | None = None,
    ):
        super().__init__(spec)
        self.loss = loss or self.default_loss
        self.arch = arch or self.default_arch
        if self.loss not in self.losses:
            raise PPGenError(f"{self.name}: loss must be one of {', '.join(self.losses)}, got {self.loss!r}")
        if self.arch not in ("mlp", "conv"):
            raise PPGenError(f"{self.name}: arch must be 'mlp' or 'conv', got {self.arch!r}")
        if self.arch == "conv" and not spec.is_image:
            raise PPGenError(
                f"{self.name}: arch 'conv' needs images (C, H, W), not event shape {spec.event_shape}"
            )
        if conditional and not spec.num_classes:
            raise PPGenError(f"{self.name}: conditional=True needs data with labels (num_classes), got none")
        self.conditional = bool(conditional)
        self.latent_dim = latent_dim or min(64, max(self.min_latent_dim, spec.dim // 2))
        hidden = hidden or self.default_hidden
        self.fourier = (self.default_fourier if spec.dim <= 4 else 0) if fourier is None else int(fourier)
        classes = spec.num_classes if conditional else None
        shape = tuple(spec.event_shape)
        if self.arch == "mlp":
            self.generator = mlp_generator(self.latent_dim, shape, hidden, layers, classes, embed_dim)
            self.discriminator = mlp_discriminator(
                shape, d_hidden or self.default_d_hidden or hidden, layers, classes, self.fourier
            )
        else:
            self.generator = conv_generator(self.latent_dim, shape, channels, classes, embed_dim)
            self.discriminator = conv_discriminator(shape, channels, classes)
        self.levels = spec.num_categories  # 0 for continuous data
        self.standardize = Standardize(spec, per_dimension=True, min_scale=1e-3)

    # --- the data <-> network maps ---------------------------------------------------------------
    def initialize(self, data) -> None:
        r"""Fits the standardization of continuous data to the training split (once)."""
        self.standardize.fit(data.x)

    def to_data(self, raw: Tensor) -> Tensor:
        r"""The generator's raw output (B, *event_shape) -> data space; K levels rounded with a
        straight-through gradient."""
        if not self.levels:
            return self.standardize.inverse(raw)
        v = torch.sigmoid(raw) * (self.levels - 1)
        return v.round().detach() + (v - v.detach())  # exactly the rounded value, the gradient of v

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""x = G(z, y) in data space. z: (B, latent_dim), y: (B,) -> (B, *event_shape)."""
        return self.to_data(self.generator(z, y if self.conditional else None))

    def discriminate(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The discriminator's logit (or the critic's score) of data-space x: (B, *event_shape) -> (B,)."""
        return self.critic(self.standardize(x), y)

    def critic(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The discriminator on standardised inputs h: (B, *event_shape) -> (B,)."""
        return self.discriminator(h, y if self.conditional else None)

    def generator_parameters(self):
        return self.generator.parameters()

    def discriminator_parameters(self):
        return self.discriminator.parameters()

    # --- the Pyro program ------------------------------------------------------------------------
    def _labels(self, n: int, y) -> Tensor | None:
        if self.conditional and y is None:
            logits = self.standardize.shift.new_zeros(self.spec.num_classes)
            return pyro.sample("y", dist.Categorical(logits=logits))
        y = None if y is None else torch.as_tensor(y, device=self.device)
        return self.check_labels(y.expand(n) if y is not None and y.ndim == 0 else y, n)

    def model(self, x: Tensor | None = None, y=None, n: int | None = None) -> Tensor:
        r"""z ~ N(0, I); x = G(z, y) at the deterministic site "x". Returns x: (B, *event_shape).

        An implicit model cannot observe data: a given ``x`` only sets the batch size B (else ``n``,
        else the number of labels, else 1). Unlabelled draws of a conditional model sample y uniformly
        at site "y"; y may be (B,) labels or one label.
        """
        if x is not None:
            n = x.shape[0]
        elif n is None:
            n = len(y) if y is not None and torch.as_tensor(y).ndim == 1 else 1
        zeros = self.standardize.shift.new_zeros(n, self.latent_dim)
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            y = self._labels(n, y)
            return pyro.deterministic("x", self.generate(z, y), event_dim=len(self.spec.event_shape))

    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n samples (n, *event_shape) in the data's support; y: (n,) labels or one label (conditional
        models)."""
        with torch.no_grad():
            return self.model(n=n, y=y).detach()

    # --- no density --------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        raise PPGenError(
            f"{self.name} has an implicit density: it only samples, log_prob is undefined; "
            "use sample-based metrics"
        )

    def evaluation_log_prob(self, x, y=None, num_samples: int = 1000):
        return None

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        if self.conditional:
            g.add_edge("y", "x")
        g.add_edge("z", "x")
        return g


@register
class WGANGP(GAN):
    r"""A Wasserstein GAN: a 1-Lipschitz critic (gradient penalty) estimates W1(p_data, p_g); G minimises it.

    Defaults (every one a constructor or ``ppgen.fit`` option), one configuration for rings8 and grid25
    (the measurements behind them are in benchmarks/gan_quality.py):

    - the critic reads 6 octaves of Fourier features of its (standardised) input when the data have
      dimension <= 4 (``fourier``), so that it can resolve modes much smaller than the data's range:
      grid25's modes have std 0.018 in standardised units, 0.7 apart;
    - a wider generator (``hidden`` 256) than critic (``d_hidden`` 128), and a latent code no smaller
      than it needs (``min_latent_dim`` 2: z has D // 2 dimensions, at least 2 and at most 64);
    - penalty weight 1 on standardised data, one critic step per generator step with the critic at
      twice the generator's learning rate (the two time-scale update rule of Heusel et al.,
      arXiv:1706.08500) instead of Gulrajani et al.'s five, Adam(0.5, 0.9);
    - 300 epochs of batches of 256 with both learning rates decayed by 0.99 per epoch (1e-3 -> 5e-5):
      the samples sharpen onto the modes as the learning rate falls.

    The arguments are :class:`GAN`'s.

    References:
        | Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional Domains
        | (Tancik et al., 2020) https://arxiv.org/abs/2006.10739
    """

    name = "wgan-gp"
    losses = ("wasserstein-gp",)
    default_loss = "wasserstein-gp"
    default_hidden = 256
    default_d_hidden = 128
    default_fourier = 6
    min_latent_dim = 2
    fit_defaults = {**GAN.fit_defaults, "epochs": 300, "gp_weight": 1.0, "lr_decay": 0.99}
    # quick mode (benchmarks/quick_presets.py): rings8 validation 8/8 modes, 80 % high-quality in 100 CPU s
    # (80 epochs, lr 1e-3 -> 9e-5; 40 epochs at decay 0.99: 60 %; 60 epochs at 0.95: k-NN recall fell to
    # 0.40). The budget lets the epochs decide on a loaded machine.
    quick_presets = {"rings8": {"config": {}, "fit": {"epochs": 80, "lr_decay": 0.97, "budget_seconds": 300}}}


@register
class DCGAN(GAN):
    r"""The deep convolutional GAN of Radford et al. for images (digits, MNIST); non-saturating loss."""

    name = "dcgan"
    images_only = True
    default_arch = "conv"
    fit_defaults = {
        "epochs": 150,
        "batch_size": 64,
        "lr": 2e-4,
        "d_steps": 1,
        "d_lr_scale": 1.0,
        "betas": (0.5, 0.999),
        "gp_weight": 0.0,
        "lr_decay": 1.0,
    }


def fixed_affine_gan(data, loc: float, scale: float, **config) -> GAN:
    r"""A `gan` on 1-D continuous data with its generator fixed to G(z) = scale z + loc: N(loc, scale^2).

    The data enter the discriminator unstandardised, so D sees p_data and p_g as they are: the setting
    in which the optimal discriminator D*(x) = p_data / (p_data + p_g) and the game value are known.
    Train only D with ``ppgen.fit(model, data, train_generator=False, ...)``.

    Arguments:
        data: a 1-D continuous data set, (N, 1).
        config: options of the `gan` constructor (``latent_dim`` must be 1).
    """
    model = create("gan", data, **config)
    affine = torch.nn.Linear(1, 1)
    with torch.no_grad():
        affine.weight.fill_(scale)
        affine.bias.fill_(loc)
    model.generator = Generator(affine)
    model.standardize.ready.fill_(True)  # identity standardisation: shift 0, scale 1
    return model
