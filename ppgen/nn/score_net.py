"""A noise-conditional score network s(x, sigma) ~ grad_x log p_sigma(x) for flat or flattened data."""

from torch import Tensor, nn

from ppgen.nn.fourier import FourierFeatures
from ppgen.nn.time_embedding import sinusoidal_embedding

__all__ = ["NoiseConditionalScoreNet"]


class NoiseConditionalScoreNet(nn.Module):
    r"""s_theta(x, sigma) = g_theta(x, log sigma) / sigma: an MLP, every layer sees an embedding of log sigma.

    Dividing by sigma is the output scaling of Song & Ermon (2020): the score of data smoothed with
    N(0, sigma^2) has magnitude ~1 / sigma, so g stays O(1) across the ladder, and the denoising
    score matching loss with weight sigma^2 becomes ``|g(x + sigma z, sigma) + z|^2 / 2``.

    Arguments:
        dim: the data dimension D (inputs are flattened).
        hidden: the width of the hidden layers.
        layers: the number of hidden layers.
        fourier: octaves of Fourier input features [sin, cos](2^k pi x), k < fourier (0 for none);
            they let a small MLP resolve modes much narrower than the data's spread.
        embedding: the size of the sinusoidal embedding of 100 log sigma (the diffusion models' time
            embedding).

    Example:
        >>> net = NoiseConditionalScoreNet(2, hidden=16, layers=2)
        >>> net(torch.randn(5, 2), torch.full((5,), 0.1)).shape
        torch.Size([5, 2])

    References:
        | Generative Modeling by Estimating Gradients of the Data Distribution (Song & Ermon, 2019)
        | https://arxiv.org/abs/1907.05600
        | Improved Techniques for Training Score-Based Generative Models (Song & Ermon, 2020)
        | https://arxiv.org/abs/2006.09011
    """

    def __init__(self, dim: int, hidden: int = 256, layers: int = 3, fourier: int = 0, embedding: int = 32):
        super().__init__()
        self.embedding = embedding
        self.features = FourierFeatures(fourier)
        sizes = [self.features.out_features(dim)] + [hidden] * layers
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.conditions = nn.ModuleList(nn.Linear(embedding, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        r"""x: (B, *shape), sigma: (B,) or () -> score (B, *shape)."""
        shape = x.shape
        h = self.features(x.reshape(shape[0], -1))  # (B, D (1 + 2 fourier))
        sigma = sigma.to(x.dtype).expand(shape[0])
        e = sinusoidal_embedding(100 * sigma.log(), self.embedding)  # (B, E)
        for linear, condition in zip(self.linears, self.conditions):
            h = self.act(linear(h) + condition(e))
        g = self.out(h)  # (B, D)
        return (g / sigma.unsqueeze(-1)).reshape(shape)
