"""PixelRNN with Row LSTM or Diagonal BiLSTM layers: the pixel chain rule with recurrent state."""

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.models.pixelcnn import PixelModel
from ppgen.nn.diagonal_lstm import DiagonalBiLSTMStack
from ppgen.nn.row_lstm import RowLSTMStack

__all__ = ["PixelRNN"]


@register
class PixelRNN(PixelModel):
    r"""PixelRNN: a type-A masked convolution, LSTM layers with residual connections, a 1x1 head.

    It shares everything but its body with :class:`~ppgen.models.pixelcnn.PixelCNN`: one-hot inputs,
    the class embedding of p(x | y), the logits head and the cached sampler (one LSTM step per pixel
    and layer). Two layers (paper section 3.1 and 3.2):

    - ``"row-lstm"`` runs down the image one row at a time, each row one convolution; its receptive
      field is a triangle above each pixel (plus the first kernel's reach), not the whole context.
    - ``"diagonal-bilstm"`` scans the skewed image diagonal by diagonal from the left and from the
      right, the right-to-left output shifted down one row: every earlier pixel is seen. Its cached
      sampler steps the left-to-right LSTM at each pixel and runs the right-to-left one over a row
      once that row is complete.

    :meth:`dependencies` reports either receptive field exactly.

    Arguments:
        spec: a binary or categorical spec of shape (C_image, H, W).
        channels: the hidden size C.
        layers: the number of LSTM layers.
        first_kernel: the size of the type-A kernel.
        kernel_size: the Row LSTM's convolution size (the Diagonal BiLSTM's state kernel is 2 x 1).
        head: the width of the 1x1 output head.
        dropout: dropout on each LSTM's output.
        embed_dim: the size of the class embedding.
        conditional: model p(x | y) with the class embedding added to every gate.
        layer: "row-lstm" or "diagonal-bilstm".

    References:
        Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("pixelrnn", DataSpec("binary", (1, 3, 3)))
        >>> m.log_prob(torch.zeros(2, 1, 3, 3)).shape, m.sample(2).shape
        (torch.Size([2]), torch.Size([2, 1, 3, 3]))
        >>> m = ppgen.create("pixelrnn", DataSpec("binary", (1, 3, 3)), layer="diagonal-bilstm")
        >>> m.log_prob(torch.zeros(2, 1, 3, 3)).shape
        torch.Size([2])
    """

    name = "pixelrnn"
    default_layers = 2
    layers_available = ("row-lstm", "diagonal-bilstm")
    # with these, digits: test NLL 16.67 nats, 79 s of one core
    fit_defaults = {"epochs": 60, "batch_size": 64, "lr": 2e-3}
    # patches-rgb (benchmarks/patches_rgb.py --split validation, seed 0): Row LSTM validation bits/dim
    # 1.007, 0.749, 0.652 after epochs 1-3 (Diagonal BiLSTM 0.938 after 1); quick mode stops at 3
    quick_presets = {"patches-rgb": {"config": {}, "fit": {"epochs": 3, "budget_seconds": 300}}}

    def __init__(self, spec, *args, layer: str = "row-lstm", **kwargs):
        if layer not in self.layers_available:
            raise PPGenError(
                f"unknown PixelRNN layer {layer!r}; expected one of: {', '.join(self.layers_available)}"
            )
        self.layer = layer
        super().__init__(spec, *args, **kwargs)

    def make_body(self, in_channels, channels, embed_dim, groups, kernel_size, **config):
        if self.layer == "diagonal-bilstm":
            return DiagonalBiLSTMStack(in_channels, channels, embed_dim=embed_dim, groups=groups, **config)
        return RowLSTMStack(
            in_channels, channels, kernel_size=kernel_size, embed_dim=embed_dim, groups=groups, **config
        )
