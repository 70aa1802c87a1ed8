"""A plain multilayer perceptron: Linear layers with an activation between them."""

from torch import nn

__all__ = ["mlp"]


def mlp(
    in_features: int,
    hidden: tuple = (),
    out_features: int | None = None,
    activation=nn.Softplus,
    dropout: float = 0.0,
) -> nn.Sequential:
    r"""Linear -> activation (-> dropout) for each width in ``hidden``, then an optional last Linear.

    Arguments:
        in_features: the input width.
        hidden: the hidden widths; () with ``out_features`` gives one affine map.
        out_features: the output width, or None to end on the last hidden activation (a feature extractor).
        activation: the activation's class.
        dropout: the dropout probability after each hidden activation (0: none; active in train mode only).

    Returns:
        An ``nn.Sequential`` mapping (*, in_features) to (*, out_features or hidden[-1] or in_features).

    Example:
        >>> import torch
        >>> mlp(4, (8, 8), 2)(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
    """
    layers, width = [], in_features
    for h in hidden:
        layers += [nn.Linear(width, h), activation()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        width = h
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
