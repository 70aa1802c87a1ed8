"""The grid of ``ppgen compare``: one cell per (model, seed), run in parallel processes and cached.

A cell trains its model through :func:`~ppgen.app.job.run_job` on train less a validation split
(which the quality curve of :mod:`ppgen.app.monitor` scores), evaluates it on test with its fast
sampler, times each sampler of :func:`~ppgen.app.samplers.sampler_sweep` against its sample quality,
and gathers what the diagnostic flags need. Cells run in spawned processes (one torch thread each unless
``threads`` says otherwise); one that fails becomes a row with an ``error`` and never costs the others.
"""

import hashlib
import math
import multiprocessing
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ppgen import features
from ppgen.app.cache import cache_dir, cache_key, data_fingerprint, load_entry, save_entry
from ppgen.app.diagnostics import off_support_fraction
from ppgen.app.job import run_job
from ppgen.app.monitor import QualityMonitor
from ppgen.app.samplers import fast_sampler, sampler_sweep, use_sampler
from ppgen.app.specs import display_name, is_program_spec, lookup
from ppgen.app.threads import resolve_threads, set_threads
from ppgen.data import Dataset
from ppgen.inference.evaluate import sampling_cost
from ppgen.metrics import image_sample_quality, mmd, mode_coverage
from ppgen.seed import seed_everything

__all__ = ["Cell", "run_cell", "run_grid", "VALID_FRACTION"]

VALID_FRACTION = 0.1  # of train, held out for the quality curve
VALID_SEED = 0


@dataclass
class Cell:
    r"""One run of the grid.

    Arguments:
        model: the registry name.
        config: the model's constructor options.
        fit: :func:`ppgen.fit` options (epochs, lr, ...), without the budget.
        budget_seconds: training seconds (None: the epochs decide), evaluation time left out.
        seed: the seed of the run.
        preset: where config and fit came from ("quick", "default" or "custom").
        num_samples: K of the IWAE estimate of the test NLL of VAEs (the curve uses ``curve_k``).
        n_image_samples, n_mode_samples: samples for the image metrics and the mode-coverage protocol.
        n_sweep: samples per sampler in the sampling-cost sweep (0 skips the sweep).
        device: "cpu" or "cuda".
    """

    model: str
    config: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    budget_seconds: float | None = None
    seed: int = 0
    preset: str = "default"
    num_samples: int = 1000
    n_image_samples: int = 500
    n_mode_samples: int = 2500
    n_sweep: int = 1000
    curve_k: int = 10
    device: str = "cpu"

    def key(self, train: Dataset, test: Dataset) -> str:
        r"""The cache key: everything that determines the run's numbers (the device excepted only on CPU)."""
        fields = asdict(self)
        if is_program_spec(self.model):  # a user's file: its contents decide the run too
            fields["source_sha256"] = hashlib.sha256(
                Path(self.model.rpartition(":")[0]).read_bytes()
            ).hexdigest()
        return cache_key(
            **fields,
            data=train.name,
            fingerprint=data_fingerprint(train, test),
            valid=[VALID_FRACTION, VALID_SEED],
        )

    @property
    def target_epochs(self) -> int | None:
        r"""The epochs asked for, else the class's default epochs (a model built for the data reads its
        regime's, ``model.fit_defaults``); None when steps decide."""
        if "epochs" in self.fit:
            return self.fit["epochs"]
        if "steps" in self.fit:
            return None
        return lookup(self.model).fit_defaults.get("epochs")


def _sample_quality(x: torch.Tensor, test: Dataset) -> tuple[str, float | None]:
    r"""The sample-quality number of the sampling-cost figure: HQ fraction on mixtures, FD-digits on
    images with a classifier, else the MMD to test."""
    if test.truth is not None and getattr(test.truth, "modes", None) is not None:
        return "hq_fraction", mode_coverage(x, test.truth.means, test.truth.std)["hq_fraction"]
    if test.spec.is_image:
        q = image_sample_quality(x, test, root=test.root)
        return ("fd_digits", q["fd_digits"]) if q["fd_digits"] is not None else ("mmd", q["mmd"])
    flat = lambda t: t.float().reshape(len(t), -1)  # noqa: E731
    return "mmd", mmd(flat(test.x[: len(x)]), flat(x))


def _sweep(model, test: Dataset, n: int, seed: int) -> list[dict]:
    out = []
    for sampler in sampler_sweep(model):
        seed_everything(seed)
        with use_sampler(model, sampler):
            x, wall, cpu = sampling_cost(model.sample, n, batch_size=500)
        key, quality = _sample_quality(x.cpu(), test)
        out.append(
            {
                "sampler": sampler.label,
                "n": n,
                "seconds_per_1000": wall,
                "cpu_seconds_per_1000": cpu,
                "quality_key": key,
                "quality": quality,
            }
        )
    return out


def run_cell(cell: Cell, train: Dataset, test: Dataset, use_cache: bool = True, cache_root=None):
    r"""Runs (or finds in the cache) one cell. Returns ``(row, samples)``: the metrics row and samples
    for the panels (64 images, or 1000 points)."""
    key = cell.key(train, test)
    if use_cache and (hit := load_entry(key, cache_root)) is not None:
        row, samples = hit
        return {**row, "cached": True}, samples
    start = time.perf_counter()
    fit_part, valid = train.holdout(VALID_FRACTION, VALID_SEED)
    monitor = QualityMonitor(valid, num_samples=cell.curve_k)
    fit_options = {**cell.fit, "budget_seconds": cell.budget_seconds, "clock": monitor.clock}
    job = run_job(
        cell.model,
        fit_part,
        test,
        cell.config,
        fit_options,
        seed=cell.seed,
        device=cell.device,
        num_samples=cell.num_samples,
        eval_options={"n_image_samples": cell.n_image_samples, "n_mode_samples": cell.n_mode_samples},
        on_epoch_end=monitor,
        progress=False,
        sampler=fast_sampler,
        score_non_finite=True,
    )
    model, metrics = job.model, dict(job.metrics)
    monitor.finish(model)
    if monitor.log and not job.fit.log:  # a non-finite stop: the monitor saw the epochs
        metrics.update(epochs=monitor.log[-1]["epoch"], steps=monitor.log[-1]["steps"])
    metrics["fit_wall_seconds"] = metrics["train_seconds"]
    metrics["train_seconds"] = job.fit.seconds or metrics["train_seconds"] - monitor.eval_seconds
    metrics["curve_seconds"] = monitor.eval_seconds
    if model.conditional:  # -log p(x | y): never ranked with unconditional NLLs
        metrics["test_cond_nll_nats"] = metrics.pop("test_nll_nats")
        metrics["test_cond_bpd"] = metrics.pop("test_bpd")
        metrics.pop("test_kl_gap_nats", None)
    sampler = fast_sampler(model)
    seed_everything(cell.seed)
    with use_sampler(model, sampler):
        samples = model.sample(64 if test.spec.is_image else 1000).detach().cpu()
    units = None
    if hasattr(model, "posterior"):
        from ppgen.inference.posterior import active_units  # here: it imports ArviZ, which only VAEs need

        y = test.y[:500] if model.conditional and test.y is not None else None
        count, var = active_units(
            model, test.x[:500].to(model.device), None if y is None else y.to(model.device)
        )
        units = (count, var.numel())
    start_sweep = time.perf_counter()
    sweep = _sweep(model, test, cell.n_sweep, cell.seed) if cell.n_sweep else []
    row = {
        **metrics,
        "model": display_name(cell.model),
        "spec": cell.model,
        "conditional": model.conditional,
        "preset": cell.preset,
        "config": cell.config,
        "fit_options": cell.fit,
        "fit_defaults": dict(model.fit_defaults),
        "defaults": model.defaults_regime,
        "budget_seconds": cell.budget_seconds,
        "target_epochs": cell.target_epochs
        if {"epochs", "steps"} & set(cell.fit)
        else model.fit_defaults.get("epochs"),
        "stopped": job.fit.stopped,
        "sampler": sampler.label,
        "sweep": sweep,
        "sweep_seconds": time.perf_counter() - start_sweep,
        "curve": {
            "key": monitor.kind[0] if monitor.kind else None,
            "label": monitor.kind[1] if monitor.kind else None,
            "higher_is_better": monitor.kind[2] if monitor.kind else None,
            "nll_kind": getattr(monitor, "nll_kind", None),
            "valid_examples": len(valid),
            "points": monitor.points,
        },
        "train_examples": len(fit_part),
        "active_units": None if units is None else units[0],
        "latent_units": None if units is None else units[1],
        "off_support_fraction": off_support_fraction(samples, test.x) if test.kind == "continuous" else None,
        "cell_seconds": time.perf_counter() - start,
        "cache_key": key,
    }
    if use_cache:
        save_entry(key, model, row, samples, cache_root)
    return {**row, "cached": False}, samples


def _init_worker(threads: int) -> None:
    set_threads(threads)


def _safe_cell(cell: Cell, train: Dataset, test: Dataset, use_cache: bool, cache_root):
    try:
        return run_cell(cell, train, test, use_cache, cache_root)
    except Exception as e:  # one failing cell must not hide the others' results
        cls = lookup(cell.model)
        row = {
            "model": display_name(cell.model),
            "spec": cell.model,
            "family": cls.family,
            "density": cls.density,
            "seed": cell.seed,
            "preset": cell.preset,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }
        return row, None


def run_grid(
    cells: list[Cell],
    train: Dataset,
    test: Dataset,
    jobs: int = 1,
    use_cache: bool = True,
    cache_root=None,
    progress: bool = True,
    threads: int | None = None,
    executor=None,
) -> list[tuple[dict, torch.Tensor | None]]:
    r"""Runs every cell, ``jobs`` at a time in spawned processes of ``threads`` torch threads each (see
    :func:`ppgen.app.threads.resolve_threads`: default ``$PPGEN_THREADS``, else one), or through
    ``executor`` (a Ray or Slurm executor of :mod:`ppgen.app.executors`: one thread per task), with one
    progress bar over the grid on stderr. Returns ``(row, samples)`` per cell, in the cells' order."""
    threads = resolve_threads(threads)
    results: list = [None] * len(cells)
    bar = tqdm(total=len(cells), desc="compare", unit="run", disable=not progress, file=sys.stderr)
    todo = []
    for i, cell in enumerate(cells):  # cached cells are read here, without starting a process
        hit = load_entry(cell.key(train, test), cache_root) if use_cache else None
        if hit is None:
            todo.append(i)
        else:
            results[i] = ({**hit[0], "cached": True}, hit[1])
            bar.update(1)
    if todo and test.spec.is_image and features.has_classifier(test.name, test.spec):
        features.classifier(test.name, test.spec, root=test.root)  # trained once here, not in every worker
    if executor is not None and todo:
        root = str(cache_root or cache_dir()) if use_cache else None  # the workers' cache: the driver's
        try:
            for k, result, error in executor.run(
                _safe_cell, [cells[i] for i in todo], (train, test, use_cache, root)
            ):
                i = todo[k]
                results[i] = result if error is None else _safe_cell_error(cells[i], error)
                bar.set_postfix_str(f"{cells[i].model} seed {cells[i].seed}")
                bar.update(1)
        finally:
            bar.close()
        return results
    if jobs <= 1 or len(todo) <= 1:
        previous = torch.get_num_threads()
        set_threads(threads)
        try:
            for i in todo:
                bar.set_postfix_str(f"{cells[i].model} seed {cells[i].seed}")
                results[i] = _safe_cell(cells[i], train, test, use_cache, cache_root)
                bar.update(1)
        finally:
            torch.set_num_threads(previous)
            bar.close()
        return results
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(
            min(jobs, len(todo)), mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            longest_first = sorted(todo, key=lambda i: -(cells[i].budget_seconds or math.inf))
            futures = {
                pool.submit(_safe_cell, cells[i], train, test, use_cache, cache_root): i
                for i in longest_first
            }
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as e:  # the worker process died (e.g. out of memory)
                    results[i] = _safe_cell_error(cells[i], e)
                bar.set_postfix_str(f"{cells[i].model} seed {cells[i].seed}")
                bar.update(1)
    finally:
        bar.close()
    return results


def _safe_cell_error(cell: Cell, e: BaseException):
    cls = lookup(cell.model)
    row = {"model": display_name(cell.model), "spec": cell.model, "family": cls.family}
    row.update(density=cls.density, seed=cell.seed)
    return {**row, "preset": cell.preset, "error": f"{type(e).__name__}: {e}"}, None
