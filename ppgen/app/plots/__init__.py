"""Figures: the shared ones in ``ppgen.app.plots.core``; each family adds ``ppgen.app.plots.<family>``."""

from ppgen.app.plots.core import (
    draw_samples,
    image_grid,
    nll_bars,
    sample_figure,
    scatter_over_density,
    training_curve,
    vector_rows,
)

__all__ = [
    "image_grid",
    "scatter_over_density",
    "vector_rows",
    "draw_samples",
    "sample_figure",
    "nll_bars",
    "training_curve",
]
