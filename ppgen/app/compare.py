"""The comparison harness: trained models on the same data, scored the same way, in one report.

``compare`` plans a grid of cells (model x seed) from each model's quick preset (quick mode) or its
default config and ``fit_defaults``, runs it in parallel processes through the run cache
(:mod:`ppgen.app.grid`, :mod:`ppgen.app.cache`), flags what a reader must know
(:mod:`ppgen.app.diagnostics`) and writes ``report.md``, ``report.json``, a self-contained
``report.html`` and the figures (:mod:`ppgen.app.report`, :mod:`ppgen.app.plots.compare`).
"""

import os
import time
from pathlib import Path

from ppgen.app.cache import cache_dir
from ppgen.app.diagnostics import add_flags
from ppgen.app.grid import Cell, run_grid
from ppgen.app.report import format_table, markdown_blocks, write_report
from ppgen.app.runs import load_checkpoint
from ppgen.app.specs import lookup
from ppgen.app.threads import resolve_threads
from ppgen.app.uses_section import uses_section
from ppgen.base import model_names, supports
from ppgen.data import Dataset

__all__ = [
    "compare",
    "plan",
    "applicable_models",
    "format_table",
    "default_jobs",
    "QUICK_MAX_SECONDS",
    "QUICK_NUM_SAMPLES",
]

QUICK_MAX_SECONDS = 120.0  # quick mode's budget when neither --budget-seconds nor the preset sets one
QUICK_NUM_SAMPLES = 100  # K of the test IWAE estimate in quick mode


def applicable_models(data: Dataset, names: list[str] | None = None) -> list[str]:
    r"""The requested (default: all registered) models that can model this data."""
    names = names or model_names()
    return [n for n in names if supports(lookup(n), data.spec) is None]


def default_jobs() -> int:
    r"""The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def plan(
    names: list[str],
    data: Dataset,
    quick: bool = False,
    budget_seconds: float | None = None,
    seeds=(0,),
    device: str = "cpu",
) -> tuple[list[Cell], dict[str, str]]:
    r"""The grid: one :class:`~ppgen.app.grid.Cell` per (model, seed), and the models left out with why.

    Quick mode takes each model's ``quick_preset(data.name)`` (config and fit options); a model
    without one is left out ("no quick preset"). The budget is ``budget_seconds``, else the preset's
    ``budget_seconds``, else ``QUICK_MAX_SECONDS``. Otherwise each model gets its default config and
    its ``fit_defaults`` (epochs decide; ``budget_seconds`` caps them when given).
    """
    cells, left_out = [], {}
    image = data.spec.is_image
    for name in names:
        cls = lookup(name)
        if quick:
            preset = cls.quick_preset(data.name)
            if preset is None:
                left_out[name] = "no quick preset"
                continue
            config, fit = preset["config"], preset["fit"]
            budget = budget_seconds or fit.pop("budget_seconds", None) or QUICK_MAX_SECONDS
            fit.pop("budget_seconds", None)
            protocol = {"num_samples": QUICK_NUM_SAMPLES, "n_sweep": 100 if image else 1000}
        else:
            config, fit, budget = {}, {}, budget_seconds  # fit() and the objectives read fit_defaults
            protocol = {"num_samples": 1000, "n_sweep": 500 if image else 2500}
        for seed in seeds:
            cells.append(Cell(name, dict(config), dict(fit), budget, seed, "quick" if quick else "default",
                              device=str(device), **protocol))  # fmt: skip
    return cells, left_out


def compare(
    train: Dataset,
    test: Dataset,
    names: list[str],
    out: Path,
    budget_seconds: float | None = None,
    quick: bool = False,
    seeds=(0,),
    device="cpu",
    jobs: int = 1,
    use_cache: bool = True,
    cache_root=None,
    progress: bool = True,
    log=print,
    uses: bool = True,
    threads: int | None = None,
    executor=None,
) -> list[dict]:
    r"""Trains (or finds cached), scores and reports every model on ``train``/``test``.

    Arguments:
        train, test: the splits every model sees (a validation split of train is held out for the
            quality curves).
        names: registry names (each must support the data).
        budget_seconds: training seconds per model, evaluation excluded (see :func:`plan`).
        quick: quick presets instead of default configs.
        seeds: one run per seed; the report gives mean ± sd.
        jobs: parallel processes.
        threads: torch threads per process (default ``$PPGEN_THREADS``, else one; see
            :mod:`ppgen.app.threads`).
        executor: run the cells as Ray tasks or Slurm jobs (:mod:`ppgen.app.executors`); None: ``jobs``
            local processes.
        use_cache: reuse finished runs from the cache (``$PPGEN_CACHE`` or the user cache directory).
        uses: add the sections on what each density is good for (outlier rejection, Bayes-rule
            classification, completion; :func:`ppgen.app.uses_section.uses_section`), computed from the
            trained models of the first seed, which are read back from the cache (so not with ``use_cache``
            off).

    Returns:
        One row per (model, seed) with its metrics and ``diagnostics``; a failed one has an ``error``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cells, left_out = plan(names, train, quick, budget_seconds, seeds, device)
    for name, why in left_out.items():
        log(f"  {name:<16} left out: {why}")
    threads = resolve_threads(threads)
    results = run_grid(cells, train, test, jobs, use_cache, cache_root, progress, threads, executor)
    rows = add_flags([row for row, _ in results])
    for row in rows:
        log("  " + _one_line(row))
    samples = {}
    for row, x in results:
        if x is not None and row["model"] not in samples:
            samples[row["model"]] = x
    wall = time.perf_counter() - start
    extra = _uses_blocks(rows, train, test, out, quick, cache_root, log) if uses and use_cache else []
    write_report(out, train, test, rows, samples, left_out, quick=quick, jobs=jobs, wall=wall,
                 cache=str(cache_root or cache_dir()) if use_cache else None, extra=extra,
                 threads=threads)  # fmt: skip
    return rows


def _one_line(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<16} seed {row.get('seed')}: FAILED: {row['error']}"
    nll = row.get("test_nll_nats", row.get("test_cond_nll_nats"))
    text = f"{nll:8.3f} nats ({row['test_nll_kind']})" if nll is not None else "no density"
    flags = ", ".join(row.get("diagnostics", [])) or "ok"
    return (f"{row['model']:<16} seed {row['seed']}: {text}; {row['epochs']} epochs in "
            f"{row['train_seconds']:.1f} s{' (cached)' if row.get('cached') else ''}; {flags}")  # fmt: skip


def _uses_blocks(
    rows: list[dict], train: Dataset, test: Dataset, out: Path, quick: bool, cache_root, log
) -> list:
    r"""The report blocks of the uses-of-a-density sections, from the first seed's cached models."""
    first_seed = min((r.get("seed", 0) for r in rows if "error" not in r), default=None)
    models = {}
    for r in rows:
        if "error" in r or r.get("seed") != first_seed or not r.get("cache_key"):
            continue
        path = Path(cache_root or cache_dir()) / r["cache_key"] / "model.pt"
        if path.exists():
            models[r["model"]], _ = load_checkpoint(path)
    if not models:
        return []
    start = time.perf_counter()
    options = {"num_samples": 20, "n_complete": 30} if quick else {}
    try:
        section = uses_section(models, train, test, out, seed=first_seed, **options)
    except Exception as e:  # the sections add to the report; they must not lose it
        log(f"  uses of a density: skipped ({type(e).__name__}: {e})")
        return [("h2", "What each density is good for"), ("p", f"Not computed: {type(e).__name__}: {e}")]
    log(f"  uses of a density: {time.perf_counter() - start:.0f} s")
    return markdown_blocks(section["markdown"])
