"""Figures. The shared ones live in ``ppgen.plots.core``; each family adds ``ppgen.plots.<family>``."""

from ppgen.plots.core import draw_samples, image_grid, nll_bars, sample_figure, scatter_over_density, training_curve, vector_rows

__all__ = ["image_grid", "scatter_over_density", "vector_rows", "draw_samples", "sample_figure", "nll_bars", "training_curve"]
