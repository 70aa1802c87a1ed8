"""Diagnostic flags of a comparison row: what a reader must know before trusting its numbers.

- ``under-trained``: the budget ended training before the epochs it was given, or the test NLL is
  worse than the ``independent`` baseline's.
- ``mode-dropping``: fewer modes covered than the data have (2-D mixtures).
- ``posterior-collapse``: fewer than half of the latent units are active (Burda et al.).
- ``non-finite-stop``: training stopped on a NaN/inf loss; the last finite model was scored.
- ``samples-off-support``: more than ``OFF_SUPPORT_LIMIT`` of the samples fall outside the plotted
  region (the data's range, padded by 15 %).
"""

import torch

__all__ = ["FLAGS", "plot_limit", "off_support_fraction", "row_flags", "add_flags", "OFF_SUPPORT_LIMIT"]

FLAGS = ("under-trained", "mode-dropping", "posterior-collapse", "non-finite-stop", "samples-off-support")
OFF_SUPPORT_LIMIT = 0.01


def plot_limit(data_x: torch.Tensor) -> float:
    r"""The half-width of the square 2-D panels: the data's largest coordinate, padded."""
    return float(data_x.abs().max()) * 1.15 + 0.1


def off_support_fraction(samples: torch.Tensor, data_x: torch.Tensor) -> float | None:
    r"""The fraction of continuous samples (N, D) outside [-lim, lim]^D or not finite (for continuous data;
    discrete samplers cannot leave their support)."""
    x = samples.reshape(len(samples), -1).double()
    inside = torch.isfinite(x).all(1) & (x.abs() <= plot_limit(data_x)).all(1)
    return float(1 - inside.double().mean())


def row_flags(row: dict, baseline_nll: float | None = None) -> list[str]:
    r"""The flags of one row (see the module docstring); ``baseline_nll`` is ``independent``'s test NLL."""
    flags = []
    target = row.get("target_epochs")
    nll = row.get("test_nll_nats")
    if (target is not None and row.get("epochs") is not None and row["epochs"] < target) or (
        baseline_nll is not None
        and nll is not None
        and nll > baseline_nll
        and row.get("model") != "independent"
    ):
        flags.append("under-trained")
    if row.get("modes_total") is not None and row.get("modes_covered") is not None:
        if row["modes_covered"] < row["modes_total"]:
            flags.append("mode-dropping")
    if row.get("active_units") is not None and row.get("latent_units"):
        if row["active_units"] < row["latent_units"] / 2:
            flags.append("posterior-collapse")
    if row.get("non_finite_stop"):
        flags.append("non-finite-stop")
    if row.get("off_support_fraction") is not None and row["off_support_fraction"] > OFF_SUPPORT_LIMIT:
        flags.append("samples-off-support")
    return flags


def add_flags(rows: list[dict]) -> list[dict]:
    r"""Sets ``row["diagnostics"]`` on every row (that did not fail), comparing NLLs to ``independent``'s."""
    baseline = next(
        (r.get("test_nll_nats") for r in rows if r.get("model") == "independent" and "error" not in r), None
    )
    for r in rows:
        if "error" not in r:
            r["diagnostics"] = row_flags(r, baseline)
    return rows
