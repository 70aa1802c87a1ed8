"""MADE: an autoencoder made autoregressive by masking its weights, with order and connectivity resampling."""

import math

import torch
from torch import Tensor, nn

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.models.autoregressive import AutoregressiveModel, make_ordering
from ppgen.nn.masked import MaskedLinear, degree_mask, made_degrees

__all__ = ["MADE"]


@register
class MADE(AutoregressiveModel):
    r"""The masked autoencoder for distribution estimation.

    A multilayer perceptron from x (binary values, or one-hot categories) to the parameters of every
    conditional, whose weights are masked so that output i sees only inputs earlier in the ordering:
    each unit gets a degree and may only read units of lower (output layer) or equal-or-lower degree
    (hidden layers). Optional direct (skip) connections from inputs to outputs are masked the same way.

    ``num_masks`` mask sets are drawn once at construction (connectivity: random hidden degrees;
    with ``resample_order`` also a random ordering for every set but the first). Training cycles
    through them, one set per step (order- and connectivity-agnostic training). Which density is which:

    - ``log_prob`` uses ONE mask set, the current one (the first, in the given ordering, after
      ``eval()``): an exact autoregressive density that sums to 1, and the one that ``model()``,
      ``sample`` and ``complete`` use.
    - ``evaluation_log_prob`` (what ``ppgen.evaluate`` reports) is the ensemble over all mask sets,
      log (1/M) sum_m p_m(x): the exact density of the equally weighted mixture of the M
      autoregressive models, so it is normalized too (see :meth:`ensemble_log_prob`).

    Arguments:
        spec: a binary or categorical data spec.
        hidden_sizes: the width of each hidden layer.
        num_masks: the number M of mask sets cycled in training and averaged in evaluation.
        resample_order: draw a random ordering for mask sets 2..M (else only connectivity varies).
        order: the ordering of the first mask set, "raster", "reverse" or "random".
        direct: add masked direct connections from inputs to outputs.
        mask_seed: the seed of the orderings and degrees.
        dropout: dropout rate on hidden units while training.
        conditional: model p(x | y): the one-hot label feeds the first hidden layer and the outputs.

    References:
        MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015), arXiv:1502.03509.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("made", DataSpec("binary", (1, 2, 2)), hidden_sizes=[8], num_masks=2)
        >>> m.log_prob(torch.zeros(1, 1, 2, 2)).shape
        torch.Size([1])
    """

    name = "made"
    kinds = ("binary", "categorical")
    conditionable = True
    fit_defaults = {"epochs": 200, "batch_size": 100, "lr": 5e-3}
    # quick mode (benchmarks/quick_presets.py): digits validation NLL 18.47 in 5.0 CPU s
    quick_presets = {"digits": {"config": {"hidden_sizes": [200], "num_masks": 4}, "fit": {"epochs": 30}}}
    tiny_config = {"hidden_sizes": [16, 16], "num_masks": 3, "resample_order": True, "order": "random"}

    def __init__(
        self,
        spec,
        hidden_sizes: list[int] = (500, 500),
        num_masks: int = 16,
        resample_order: bool = True,
        order: str = "raster",
        direct: bool = True,
        mask_seed: int = 0,
        dropout: float = 0.0,
        conditional: bool = False,
    ):
        super().__init__(spec, conditional=conditional)
        hidden_sizes = [int(h) for h in hidden_sizes]
        if num_masks < 1 or not hidden_sizes or min(hidden_sizes) < 1 or not 0.0 <= dropout < 1.0:
            raise PPGenError(
                "made: expected num_masks >= 1, hidden sizes >= 1 and 0 <= dropout < 1, "
                f"got {num_masks}, {hidden_sizes}, {dropout}"
            )
        d = spec.dim
        self.categories = (
            spec.num_categories if spec.base_kind == "categorical" else 1
        )  # inputs and outputs per dimension
        self.num_masks, self.hidden_sizes, self.dropout = num_masks, hidden_sizes, dropout

        generator = torch.Generator().manual_seed(mask_seed)
        first = make_ordering(order, d, mask_seed)
        orders, degrees = [], []
        for m in range(num_masks):
            o = first if m == 0 or not resample_order else torch.randperm(d, generator=generator)
            orders.append(o)
            degrees.append(torch.cat(made_degrees(o, hidden_sizes, generator)[1:-1]))
        self.register_buffer("orders", torch.stack(orders))  # (M, D)
        self.register_buffer("hidden_degrees", torch.stack(degrees))  # (M, sum of hidden sizes)
        self.register_buffer("mask_index", torch.zeros((), dtype=torch.long))

        width = d * self.categories
        sizes = [width, *hidden_sizes]
        self.hidden_layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = MaskedLinear(sizes[-1], width)
        self.direct = MaskedLinear(width, width, bias=False) if direct else None
        self.label_hidden = (
            nn.Linear(self.num_classes, hidden_sizes[0], bias=False) if self.conditional else None
        )
        self.label_output = nn.Linear(self.num_classes, width, bias=False) if self.conditional else None
        self.use_mask(0)
        self._training_mask = 0  # the mask set training returns to after an evaluation (see ``train``)

    # --- masks ----------------------------------------------------------------------------------
    def layer_degrees(self, m: int) -> list[Tensor]:
        r"""The unit degrees of mask set m: inputs, each hidden layer, outputs (one per input/output unit)."""
        position = self.orders[m].argsort() + 1
        unit = position.repeat_interleave(self.categories)
        hidden = list(torch.split(self.hidden_degrees[m], self.hidden_sizes))
        return [unit, *hidden, unit]

    @torch.no_grad()
    def use_mask(self, m: int) -> None:
        r"""Makes mask set m (0 <= m < num_masks) the current one."""
        self.mask_index.fill_(int(m) % self.num_masks)
        degrees = self.layer_degrees(int(self.mask_index))
        for layer, a, b in zip(self.hidden_layers, degrees[:-2], degrees[1:-1]):
            layer.set_mask(degree_mask(a, b, strict=False))
        self.output.set_mask(degree_mask(degrees[-2], degrees[-1], strict=True))
        if self.direct is not None:
            self.direct.set_mask(degree_mask(degrees[0], degrees[-1], strict=True))

    def train(self, mode: bool = True):
        r"""As ``nn.Module.train``; ``eval()`` also returns to the first mask set, and ``train()`` after it
        to the set training had reached, so that evaluating between epochs (a checkpoint's score, a
        quality curve taken at moments of wall time) leaves the sequence of training steps as it was."""
        if mode == self.training:
            return super().train(mode)
        if mode:
            super().train(True)
            self.use_mask(self._training_mask)
        else:
            self._training_mask = int(self.mask_index)
            super().train(False)
            self.use_mask(0)
        return self

    def ordering(self):
        return self.orders[self.mask_index]

    def dependencies(self):
        r"""The inputs each output can reach through the current masks (via hidden units, or direct)."""
        reach = self.hidden_layers[0].mask
        for layer in self.hidden_layers[1:]:
            reach = (layer.mask @ reach).clamp(max=1)
        reach = (self.output.mask @ reach).clamp(max=1)
        if self.direct is not None:
            reach = (reach + self.direct.mask).clamp(max=1)
        k, d = self.categories, self.spec.dim
        per_dim = reach.reshape(d, k, d, k).amax(dim=(1, 3))  # (D out, D in)
        return {i: set(torch.nonzero(per_dim[i]).flatten().tolist()) for i in range(d)}

    # --- the network ------------------------------------------------------------------------------
    def conditionals(self, x, y=None):
        n = x.shape[0]
        inputs = x.reshape(n, -1).to(self.dtype) if self.categories == 1 else self.one_hot(x).reshape(n, -1)
        h = inputs
        for i, layer in enumerate(self.hidden_layers):
            a = layer(h)
            if i == 0 and self.conditional:
                a = a + self.label_hidden(self.label_features(y))
            h = (
                nn.functional.dropout(torch.relu(a), self.dropout, self.training)
                if self.dropout
                else torch.relu(a)
            )
        out = self.output(h)
        if self.direct is not None:
            out = out + self.direct(inputs)
        if self.conditional:
            out = out + self.label_output(self.label_features(y))
        if self.categories == 1:
            return out.reshape(x.shape)  # logits (B, *event_shape)
        return out.reshape(*x.shape, self.categories)  # logits (B, *event_shape, K)

    def next_mask(self) -> None:
        r"""In training, moves to the next mask set: one per training step (traced or not)."""
        if self.training and self.num_masks > 1:
            self.use_mask(int(self.mask_index) + 1)

    def model(self, x=None, y=None):
        if x is not None:
            self.next_mask()
        return super().model(x, y)

    def training_loss(self, x, y=None):
        self.next_mask()
        return super().training_loss(x, y)

    # --- the ensemble ----------------------------------------------------------------------------
    @torch.no_grad()
    def ensemble_log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""log (1/M) sum_m p_m(x) over the M mask sets: (B, *event_shape) -> (B,) nats.

        The exact log density of the mixture of the M autoregressive models (normalized). The
        current mask set is restored afterwards.
        """
        current = int(self.mask_index)
        try:
            lps = []
            for m in range(self.num_masks):
                self.use_mask(m)
                lps.append(self.log_prob(x, y))
        finally:
            self.use_mask(current)
        return torch.logsumexp(torch.stack(lps), dim=0) - math.log(self.num_masks)

    def evaluation_log_prob(self, x, y=None, num_samples=1000):
        r"""The reported test log-likelihood: the exact ensemble over all mask sets
        (:meth:`ensemble_log_prob`)."""
        return self.ensemble_log_prob(x, y), "exact"
