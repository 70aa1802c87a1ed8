"""`ppgen compare --executor ray|slurm`: the same report numbers as the local pool, failed cells kept as
rows, a grid resumed from the cache, and one line when the package is missing."""

import json
import sys

import pytest
import test_compare
from test_compare import TINY

from ppgen.app.compare import compare
from ppgen.app.executors import RayExecutor, SlurmExecutor, SlurmOptions
from ppgen.app.grid import Cell, run_grid

rings, presets = test_compare.rings, test_compare.presets  # compare's data and quick presets, as fixtures

KEYS = ("model", "seed", "test_nll_nats", "hq_fraction", "modes_covered", "epochs", "steps")


def _numbers(out):
    rows = json.loads((out / "report.json").read_text())["rows"]
    return sorted(tuple(r.get(k) for k in KEYS) for r in rows)


def _compare(rings, out, cache, executor=None):
    train, test = rings
    compare(train, test, ["independent", "mixture"], out, quick=True, seeds=(0,), cache_root=cache,
            progress=False, log=lambda m: None, uses=False, executor=executor)  # fmt: skip
    return _numbers(out)


@pytest.fixture
def local_numbers(rings, presets, tmp_path):
    numbers = _compare(rings, tmp_path / "local", tmp_path / "cache-local")
    assert [n[:2] for n in numbers] == [("independent", 0), ("mixture", 0)]
    assert all(n[2] is not None and n[3] is not None for n in numbers)  # trained and scored
    return numbers


def test_slurm_debug_executor_gives_the_local_numbers_and_keeps_failed_cells(rings, presets, tmp_path,
                                                                            local_numbers):  # fmt: skip
    pytest.importorskip("submitit")
    executor = SlurmExecutor(tmp_path / "slurm", SlurmOptions(cluster="debug"))
    assert _compare(rings, tmp_path / "slurm-report", tmp_path / "cache-slurm", executor) == local_numbers
    train, test = rings
    bad = Cell("mixture", {"components": -1}, {"epochs": 1}, **TINY)
    good = Cell("independent", fit={"epochs": 1}, **TINY)
    (row_bad, _), (row_good, x) = run_grid([bad, good], train, test, use_cache=False, progress=False,
                                           executor=executor)  # fmt: skip
    assert "components" in row_bad["error"] and "error" not in row_good and x is not None


@pytest.mark.slow
def test_slurm_local_executor_runs_jobs_in_processes(rings, presets, tmp_path, local_numbers):
    pytest.importorskip("submitit")
    executor = SlurmExecutor(tmp_path / "slurm", SlurmOptions(cluster="local", time_min=10))
    assert _compare(rings, tmp_path / "slurm-report", tmp_path / "cache-slurm", executor) == local_numbers


@pytest.mark.slow
def test_ray_executor_gives_the_local_numbers_and_resumes_from_the_cache(rings, presets, tmp_path,
                                                                         local_numbers):  # fmt: skip
    pytest.importorskip("ray")
    executor = RayExecutor(num_cpus=2)
    cache = tmp_path / "cache-ray"
    assert _compare(rings, tmp_path / "ray-report", cache, executor) == local_numbers
    rows = json.loads((tmp_path / "ray-report" / "report.json").read_text())["rows"]
    assert not any(r.get("cached") for r in rows)
    again = _compare(rings, tmp_path / "ray-again", cache, executor)  # all cached: no Ray task runs
    assert again == local_numbers
    assert all(
        r.get("cached") for r in json.loads((tmp_path / "ray-again" / "report.json").read_text())["rows"]
    )


@pytest.mark.parametrize("executor, extra", [("ray", "ray"), ("slurm", "slurm")])
def test_missing_package_says_what_to_install(executor, extra, monkeypatch, tmp_path, capsys):
    from ppgen.app.cli import main

    monkeypatch.setitem(sys.modules, {"ray": "ray", "slurm": "submitit"}[executor], None)  # import fails
    code = main(["compare", "--data", "rings8", "--models", "independent", "--executor", executor,
                 "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"pip install 'ppgen[{extra}]'" in err
    assert not (tmp_path / "r").exists()
