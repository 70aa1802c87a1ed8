"""Runtime settings: the thread count (``--threads``, ``PPGEN_THREADS``, compare's workers), a light
start-up (`ppgen --help` imports no heavy library), and devices (``--device cuda`` without CUDA, every
tensor of every model moved by ``.to(device)``; the CUDA run itself is marked ``gpu``)."""

import importlib.util
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

import ppgen
from ppgen.app import grid
from ppgen.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "numpyro", "arviz", "matplotlib", "sklearn", "scipy", "torch", "pyro")


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _python(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PPGEN_THREADS"} | {"OMP_NUM_THREADS": "1"} | env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


# --- start-up ----------------------------------------------------------------------------------------
def test_help_imports_no_heavy_library():
    code = (
        "import contextlib, io, sys\n"
        "from ppgen.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('heavy:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert _python(code) == "heavy:"


# --- threads -----------------------------------------------------------------------------------------
def test_threads_flag_and_environment_variable_set_torch_threads():
    code = (
        "import contextlib, io, os, torch\n"
        "from ppgen.app.cli import main\n"
        "counts = []\n"
        "def run(*argv):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(['list', *argv]) == 0\n"
        "    counts.append(torch.get_num_threads())\n"
        "run('--threads', '3')\n"
        "os.environ['PPGEN_THREADS'] = '2'\n"
        "run()\n"
        "run('--threads', '3')\n"  # the flag wins over the environment
        "del os.environ['PPGEN_THREADS']\n"
        "run()\n"  # the default: one thread
        "print(counts)\n"
    )
    assert _python(code) == "[3, 2, 3, 1]"


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_threads_flag_is_one_line(value, capsys):
    assert main(["list", "--threads", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0] and "non-negative integer" in err[0]


def test_bad_threads_environment_variable_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("PPGEN_THREADS", "many")
    assert main(["list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PPGEN_THREADS" in err[0] and "'many'" in err[0]


def test_compare_workers_run_on_the_asked_thread_count():
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=grid._init_worker, initargs=(2,)) as pool:
        assert pool.submit(torch.get_num_threads).result() == 2


# --- devices -----------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without CUDA")
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "independent", "--data", "rings8", "--epochs", "1"],
        ["compare", "--data", "rings8", "--models", "independent"],
    ],
)
def test_device_cuda_without_cuda_is_one_line_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--device", "cuda", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without CUDA")
def test_gpu_check_says_so_without_cuda(capsys):
    assert _benchmark("gpu_check").main([]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_to_device_moves_every_tensor_of_every_model():
    check = _benchmark("gpu_check")
    meta = torch.device("meta")
    for name in ppgen.model_names():
        model = ppgen.create(name, check.data_for(name)[0]).to(meta)
        assert check.misplaced(model, meta) == [], name
    model.left_behind = torch.zeros(3)  # the check finds a tensor that is neither parameter nor buffer
    assert check.misplaced(model, meta) == [f"{type(model).__name__}.left_behind"]


def test_gpu_check_runs_a_model_on_the_cpu():
    row = _benchmark("gpu_check").check("independent", "cpu", steps=2, n_samples=16)
    assert row["misplaced"] == [] and row["wrong_outputs"] == [] and row["metrics_device"] == "cpu"
    assert row["steps_per_second"] > 0 and row["samples_per_second"] > 0


@pytest.mark.gpu
@pytest.mark.parametrize("name", ppgen.model_names())
def test_every_model_trains_evaluates_and_samples_on_cuda(name):
    row = _benchmark("gpu_check").check(name, "cuda", steps=2, n_samples=16)
    assert row["misplaced"] == [] and row["wrong_outputs"] == []
    assert row["metrics_device"].startswith("cuda")
