"""NADE and RNADE: one hidden layer shared by every conditional, updated by a running activation.

The hidden pre-activation of dimension i is a_i = c + sum_{j<i} W_j e(x_j), so a_{i+1} = a_i + W_i e(x_i):
``log_prob`` is one exclusive cumulative sum over the ordering, and sampling carries a_i along,
O(DH) per example for both instead of the O(D^2 H) of recomputing every conditional.
"""

from typing import ClassVar

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.models.autoregressive import AutoregressiveModel, make_ordering

__all__ = ["NADE", "RNADE", "RunningActivationModel"]

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


class RunningActivationModel(AutoregressiveModel):
    r"""The NADE machinery shared by :class:`NADE` and :class:`RNADE`.

    Every dimension i (in the ordering) has an input embedding W_i: (E, H) of its encoded value
    e(x_i) (E = 1 for binary and continuous values, K for one-hot categories), and an output layer
    V_i: (P, H), b_i: (P,) that maps h_i = act(a_i) to the P parameters of its conditional.
    Subclasses say how values are encoded (:meth:`encode`), how many parameters a conditional has
    (``params_per_dim``) and which distribution they parameterize (:meth:`factor`).

    Arguments:
        spec: the data spec.
        hidden: the width H of the shared hidden layer.
        activation: "sigmoid", "relu" or "tanh".
        order: the ordering, "raster", "reverse" or "random".
        order_seed: the seed of the random ordering.
        dropout: the dropout rate of the hidden units while training (0 = none; None: the model's
            ``default_dropout``).
        conditional: model p(x | y): the one-hot label feeds the hidden layer of every conditional.
    """

    conditionable = True
    params_per_dim: int = 1
    encoding_width: int = 1
    default_dropout: ClassVar[float] = 0.0

    def __init__(
        self,
        spec,
        hidden: int = 500,
        activation: str = "sigmoid",
        order: str = "raster",
        order_seed: int = 0,
        dropout: float | None = None,
        conditional: bool = False,
    ):
        super().__init__(spec, conditional=conditional)
        dropout = self.default_dropout if dropout is None else dropout
        if activation not in ACTIVATIONS:
            raise PPGenError(
                f"{self.name}: unknown activation {activation!r}; expected one of: {', '.join(ACTIVATIONS)}"
            )
        if hidden < 1 or not 0.0 <= dropout < 1.0:
            raise PPGenError(
                f"{self.name}: expected hidden >= 1 and 0 <= dropout < 1, got {hidden}, {dropout}"
            )
        d, e, p = spec.dim, self.encoding_width, self.params_per_dim
        self.hidden, self.activation, self.dropout = hidden, activation, dropout
        self.register_buffer("order", make_ordering(order, d, order_seed))
        self.W = nn.Parameter(torch.randn(d, e, hidden) / d**0.5)  # input embeddings, in ordering
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(d, p, hidden) / hidden**0.5)  # output layers, in ordering
        self.b = nn.Parameter(torch.zeros(d, p))
        self.U = nn.Linear(self.num_classes, hidden, bias=False) if self.conditional else None

    # --- what subclasses say ------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        r"""Values (B, D) in ordering -> encodings (B, D, E)."""
        return x.unsqueeze(-1).to(self.dtype)

    def factor(self, params: Tensor) -> dist.TorchDistribution:
        r"""Parameters (*, P) -> the distribution of one dimension, batch shape (*)."""
        raise NotImplementedError

    def to_params(self, out: Tensor) -> Tensor:
        r"""Outputs (B, D, P) in flat dimension order -> the tensor :meth:`likelihood_from` reads."""
        raise NotImplementedError

    def likelihood_from(self, params: Tensor) -> dist.TorchDistribution:
        return self.factor(params).to_event(len(self.spec.event_shape))

    # --- the running activation ---------------------------------------------------------------------
    def initial_activation(self, n: int, y: Tensor | None) -> Tensor:
        r"""a_1 = c (+ U one_hot(y)): (n, H)."""
        a = self.c.expand(n, -1)
        return a + self.U(self.label_features(y)) if self.conditional else a

    def hidden_units(self, a: Tensor) -> Tensor:
        h = ACTIVATIONS[self.activation](a)
        return nn.functional.dropout(h, self.dropout, self.training) if self.dropout else h

    def conditionals(self, x, y=None):
        n = x.shape[0]
        xo = x.reshape(n, -1)[:, self.order]  # (B, D), in ordering
        contrib = torch.einsum("bde,deh->bdh", self.encode(xo), self.W)  # (B, D, H)
        a = (
            self.initial_activation(n, y).unsqueeze(1) + torch.cumsum(contrib, dim=1) - contrib
        )  # exclusive: a_i sees j < i
        out = torch.einsum("bdh,dph->bdp", self.hidden_units(a), self.V) + self.b  # (B, D, P), in ordering
        flat = torch.empty_like(out)
        flat[:, self.order] = out
        return self.to_params(flat)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n samples in O(DH) each: the running activation a_{i+1} = a_i + W_i e(x_i) is carried along.

        Samples come from the model without dropout, whatever ``self.training`` says.
        """
        y = self.labels_or_uniform(n, y)
        a = self.initial_activation(n, y).clone()  # (n, H)
        x = torch.zeros(n, self.spec.dim, device=self.device, dtype=self.dtype)
        for t, d in enumerate(self.order.tolist()):
            out = ACTIVATIONS[self.activation](a) @ self.V[t].T + self.b[t]  # (n, P); never dropout
            xt = self.factor(out).sample().to(self.dtype)  # (n,)
            x[:, d] = xt
            a = a + self.encode(xt.unsqueeze(1))[:, 0] @ self.W[t]
        return x.reshape(n, *self.spec.event_shape)


@register
class NADE(RunningActivationModel):
    r"""The neural autoregressive distribution estimator, for binary or categorical data.

    h_i = sigmoid(c + W_{<i} x_{<i}), p(x_i | x_<i) = Bernoulli(sigmoid(b_i + V_i h_i)) (binary) or a
    softmax over K levels with one-hot inputs (categorical). Exact ``log_prob`` in one O(DH) pass;
    ``sample`` is the O(DH) incremental sampler. The default config regularizes the shared hidden
    layer with dropout 0.5 while training (digits has 1,437 training images); ``eval()`` turns it off.

    References:
        The Neural Autoregressive Distribution Estimator (Larochelle & Murray, 2011), AISTATS.
        Neural Autoregressive Distribution Estimation (Uria et al., 2016), arXiv:1605.02226.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("nade", DataSpec("binary", (1, 2, 2)), hidden=8)
        >>> m.sample(3).shape
        torch.Size([3, 1, 2, 2])
    """

    name = "nade"
    kinds = ("binary", "categorical")
    fit_defaults = {"epochs": 80, "batch_size": 100, "lr": 1e-2}
    # quick mode (benchmarks/quick_presets.py): digits validation NLL 18.34 in 12 CPU s
    quick_presets = {"digits": {"config": {"hidden": 100}, "fit": {"epochs": 20, "lr": 2e-2}}}
    tiny_config = {"hidden": 16, "order": "random"}

    default_dropout = 0.5

    @property
    def params_per_dim(self) -> int:
        return 1 if self.spec.kind == "binary" else self.spec.num_categories

    @property
    def encoding_width(self) -> int:
        return self.params_per_dim

    def encode(self, x):
        return x.unsqueeze(-1).to(self.dtype) if self.spec.kind == "binary" else self.one_hot(x)

    def factor(self, params):
        if self.spec.kind == "binary":
            return dist.Bernoulli(logits=params.squeeze(-1))
        return dist.Categorical(logits=params)

    def to_params(self, out):
        shape = self.spec.event_shape
        if self.spec.kind == "binary":
            return out.reshape(out.shape[0], *shape)  # logits (B, *event_shape)
        return out.reshape(out.shape[0], *shape, self.params_per_dim)  # logits (B, *event_shape, K)


@register
class RNADE(RunningActivationModel):
    r"""Real-valued NADE: each conditional is a mixture of ``components`` Gaussians.

    p(x_i | x_<i) = sum_c pi_ic N(x_i; mu_ic, sigma_ic^2) with (pi, mu, log sigma)_i = V_i h_i + b_i and
    h_i = relu(c + W_{<i} x_{<i}), carried as a running activation like NADE.

    Arguments:
        components: the number of Gaussians per conditional.
        (the rest as :class:`RunningActivationModel`.)

    References:
        RNADE: The real-valued neural autoregressive density-estimator (Uria, Murray & Larochelle, 2013),
        arXiv:1306.0186.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("rnade", DataSpec("continuous", (2,)), hidden=16)
        >>> m.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    name = "rnade"
    kinds = ("continuous",)
    fit_defaults = {"epochs": 60, "batch_size": 100, "lr": 1e-3}
    # quick mode (benchmarks/quick_presets.py): rings8 validation KL gap 0.186 and 0.083 for seeds 0 and 1,
    # 8/8 modes, 84-89 % HQ in 22 CPU s; test 0.139, 8/8, 90 % (24 CPU s). The former 25 epochs at a constant
    # 3e-3 (validation 0.399 once) gave 0.511 after the fused Adam, and 40 constant epochs 0.148-0.297 on
    # validation but 0.539 on test: the decay lets the last epochs settle.
    quick_presets = {"rings8": {"config": {}, "fit": {"epochs": 40, "lr": 3e-3, "lr_decay": 0.93}}}
    tiny_config = {"hidden": 16, "components": 3}
    LOG_SCALE_MIN: ClassVar[float] = -9.0
    LOG_SCALE_MAX: ClassVar[float] = 5.0

    def __init__(
        self,
        spec,
        hidden: int = 100,
        components: int = 10,
        activation: str = "relu",
        order: str = "raster",
        order_seed: int = 0,
        dropout: float = 0.0,
        conditional: bool = False,
    ):
        if components < 1:
            raise PPGenError(f"rnade: expected components >= 1, got {components}")
        self.components = components
        self.params_per_dim = 3 * components
        super().__init__(spec, hidden, activation, order, order_seed, dropout, conditional)
        with torch.no_grad():  # spread the initial means over the data's usual range
            self.b.view(-1, 3, components)[:, 1] = torch.linspace(-2.0, 2.0, components)

    def factor(self, params):
        logits, loc, log_scale = params.unflatten(-1, (3, self.components)).unbind(-2)
        scale = log_scale.clamp(self.LOG_SCALE_MIN, self.LOG_SCALE_MAX).exp()
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale))

    def to_params(self, out):
        return out.reshape(out.shape[0], *self.spec.event_shape, self.params_per_dim)  # (B, *event_shape, 3C)
