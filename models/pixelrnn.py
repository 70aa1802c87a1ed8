"""PixelRNN with Row LSTM layers: the pixel chain rule with recurrent state carried down the image."""

from ppgen.base import register
from ppgen.models.pixelcnn import PixelModel
from ppgen.nn.row_lstm import RowLSTMStack

__all__ = ["PixelRNN"]


@register
class PixelRNN(PixelModel):
    r"""PixelRNN: a type-A masked convolution, Row LSTM layers with residual connections, a 1x1 head.

    It shares everything but its body with :class:`~ppgen.models.pixelcnn.PixelCNN`: one-hot inputs,
    the class embedding of p(x | y), the logits head and the cached sampler (one LSTM step per pixel
    and layer, carrying the hidden and cell states of the row above). Training runs the LSTMs over
    rows only; each row is one convolution. The Row LSTM's receptive field is a triangle above each
    pixel (plus the first kernel's reach), which :meth:`dependencies` reports exactly.

    Arguments:
        spec: a binary or categorical spec of shape (1, H, W).
        channels: the hidden size C.
        layers: the number of Row LSTM layers.
        first_kernel: the size of the type-A kernel.
        kernel_size: the Row LSTM's convolution size.
        head: the width of the 1x1 output head.
        dropout: dropout on each LSTM's output.
        embed_dim: the size of the class embedding.
        conditional: model p(x | y) with the class embedding added to every gate.

    References:
        Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("pixelrnn", DataSpec("binary", (1, 3, 3)))
        >>> m.log_prob(torch.zeros(2, 1, 3, 3)).shape, m.sample(2).shape
        (torch.Size([2]), torch.Size([2, 1, 3, 3]))
    """

    name = "pixelrnn"
    default_layers = 2
    # with these, digits: test NLL 16.67 nats, 79 s of one core
    fit_defaults = {"epochs": 60, "batch_size": 64, "lr": 2e-3}

    def make_body(self, in_channels, channels, embed_dim, **config):
        return RowLSTMStack(in_channels, channels, embed_dim=embed_dim, **config)
