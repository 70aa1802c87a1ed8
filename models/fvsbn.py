"""The fully visible sigmoid belief network: logistic (softmax) regression of each dimension on the
ones before it."""

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.models.autoregressive import AutoregressiveModel, make_ordering
from ppgen.nn.masked import MaskedLinear, degree_mask

__all__ = ["FVSBN"]

MAX_PARAMETERS = 50_000_000


@register
class FVSBN(AutoregressiveModel):
    r"""p(x_i = 1 | x_<i) = sigmoid(b_i + sum_{j<i} W_ij x_j): one logistic regression per dimension.

    D(D+1)/2 free parameters for D binary dimensions (the strictly lower-triangular W under the
    ordering, and b). Categorical data get a softmax regression on the one-hot encoded past,
    (DK)^2 weights in K x K blocks. One masked matrix product gives every conditional at once.

    Arguments:
        spec: a binary or categorical data spec.
        order: the ordering, "raster", "reverse" or "random".
        order_seed: the seed of the random ordering.

    References:
        Connectionist learning of belief networks (Neal, 1992), Artificial Intelligence 56.
        Learning Deep Sigmoid Belief Networks with Data Augmentation (Gan et al., 2015), AISTATS.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("fvsbn", DataSpec("binary", (1, 2, 2)))
        >>> m.log_prob(torch.zeros(1, 1, 2, 2)).shape
        torch.Size([1])
    """

    name = "fvsbn"
    kinds = ("binary", "categorical")
    fit_defaults = {"epochs": 150, "batch_size": 100, "lr": 1e-2}
    # quick mode (benchmarks/quick_presets.py): digits validation NLL 19.10 in 3.7 CPU s
    quick_presets = {"digits": {"config": {}, "fit": {"epochs": 30}}}
    tiny_config = {"order": "random"}

    def __init__(self, spec, order: str = "raster", order_seed: int = 0):
        super().__init__(spec)
        d, k = spec.dim, spec.num_categories
        width = d if spec.kind == "binary" else d * k  # inputs: x itself, or one-hot x
        if width * width > MAX_PARAMETERS:
            raise PPGenError(
                f"fvsbn: {width}^2 weights exceed {MAX_PARAMETERS}; "
                "expected a smaller event shape or fewer categories"
            )
        self.register_buffer("order", make_ordering(order, d, order_seed))
        degrees = self.degrees()
        self.linear = MaskedLinear(width, width, degree_mask(degrees, degrees, strict=True))
        self.linear.weight.data.zero_()

    def degrees(self):
        r"""The degree of every input/output unit: 1 + the position of its dimension in the ordering."""
        position = self.order.argsort() + 1
        if self.spec.kind == "binary":
            return position
        return position.repeat_interleave(self.spec.num_categories)

    def conditionals(self, x, y=None):
        b = x.shape[0]
        if self.spec.kind == "binary":
            return self.linear(x.reshape(b, -1).to(self.dtype)).reshape(x.shape)  # logits (B, *event_shape)
        k = self.spec.num_categories
        logits = self.linear(self.one_hot(x).reshape(b, -1))  # (B, D K)
        return logits.reshape(*x.shape, k)
