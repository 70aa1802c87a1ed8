"""Every registered model on CUDA: a few training steps, evaluation and sampling, against the CPU.

For each model of ``ppgen.model_names()`` (on rings8 where it models continuous data, else on digits) the
script trains ``--steps`` steps, evaluates on 500 test examples and samples, first on ``--device`` and
then on the CPU of the same machine, and checks on the device that

- every parameter and buffer is on the device (``model.to(device)`` moved all of it),
- no module holds a plain tensor attribute left behind on another device,
- ``log_prob`` (where the model has a density) and ``sample`` return tensors on the device.

The table gives training steps per second and samples per second (wall, after a warm-up, the device
synchronised) on both, with their ratio. Without CUDA it says so in one line and exits with status 2;
``--device cpu`` runs the same checks on the CPU (as the tests do).

    python benchmarks/gpu_check.py [--steps 20] [--models vae,ddpm] [--device cuda] [--threads 1]
"""

import argparse
import sys
import time

import torch

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.base import supports
from ppgen.inference.evaluate import sampling_cost

DATA = ("rings8", "digits")


def stray_tensors(model: torch.nn.Module, device: torch.device) -> list[str]:
    r"""The plain tensor attributes (alone or in a list, tuple or dict) of ``model``'s ppgen modules that
    are not on ``device``: what ``.to(device)`` leaves behind.

    Modules of other libraries are not scanned: Pyro's ``AutoRegressiveNN`` keeps its construction masks
    as plain attributes (``masks``, ``mask_skip``) but computes with buffer copies of them.
    """
    stray = []
    for prefix, module in model.named_modules():
        if not type(module).__module__.startswith("ppgen"):
            continue
        for key, value in vars(module).items():
            values = value.values() if isinstance(value, dict) else value
            values = values if isinstance(values, (list, tuple, type({}.values()))) else [value]
            if any(isinstance(v, torch.Tensor) and v.device != device for v in values):
                stray.append(f"{prefix or type(model).__name__}.{key}")
    return stray


def misplaced(model: torch.nn.Module, device: torch.device) -> list[str]:
    r"""Parameters, buffers and tensor attributes of ``model`` that are not on ``device``."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, t in named if t.device != device] + stray_tensors(model, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_for(name: str) -> tuple:
    r"""The (train, test) splits a model is checked on: rings8 where it models it, else digits."""
    cls = ppgen.get(name)
    for data in DATA:
        train = ppgen.data.load(data, "train")
        if supports(cls, train.spec) is None:
            return train, ppgen.data.load(data, "test")
    raise RuntimeError(f"{name} models neither {' nor '.join(DATA)}")


def check(name: str, device, steps: int = 20, n_samples: int = 256, seed: int = 0) -> dict:
    r"""Trains, evaluates and samples model ``name`` on ``device``; returns what it measured and found.

    Returns:
        A dict with ``steps_per_second``, ``samples_per_second``, ``misplaced`` (names of tensors not on
        ``device``), ``wrong_outputs`` (outputs on another device) and ``test_nll_nats``.
    """
    device = torch.device(device)
    train, test = data_for(name)
    ppgen.seed_everything(seed)
    model = ppgen.create(name, train).to(device)
    ppgen.fit(model, train, steps=1, progress=False)  # warm-up: kernels, allocator, lazy buffers
    _sync(device)
    start = time.perf_counter()
    ppgen.fit(model, train, steps=steps, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    model.eval()
    test = test.select(torch.arange(min(500, len(test))))
    metrics = ppgen.evaluate(model, test, num_samples=10, n_mode_samples=500, n_image_samples=0)
    wrong = []
    x = test.x[:8].to(device)
    y = test.y[:8].to(device) if model.conditional else None
    with torch.no_grad():
        if model.density != "implicit":
            if model.log_prob(x, y).device != device:
                wrong.append("log_prob")
        samples, wall, _ = sampling_cost(model.sample, n_samples, warmup=2)
    if samples.device != device:
        wrong.append("sample")
    return {
        "model": name,
        "data": train.name,
        "steps_per_second": steps / seconds,
        "samples_per_second": 1000 / wall,
        "misplaced": misplaced(model, device),
        "wrong_outputs": wrong,
        "test_nll_nats": metrics["test_nll_nats"],
        "metrics_device": metrics["device"],
    }


def _versus(row: dict, cpu: dict | None, key: str) -> str:
    r"""The CPU's number and the device's speed-up over it, two table cells."""
    return " | " if cpu is None else f"{cpu[key]:.1f} | {row[key] / cpu[key]:.2f}x"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device to check (default cuda)")
    parser.add_argument("--models", default=None, help="comma-separated (default: every registered model)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model (default 20)")
    parser.add_argument("-n", "--num-samples", type=int, default=256, help="timed samples (default 256)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU runs (no ratios)")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check", file=sys.stderr)
        return 2
    threads = set_threads(args.threads)
    names = args.models.split(",") if args.models else ppgen.model_names()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"{len(names)} models, {args.steps} training steps each, on {where} and the CPU, {threads} threads")
    print()
    print("| model | data | train steps/s device | CPU | ratio | samples/s device | CPU | ratio | checks |")
    print("|---|---|---|---|---|---|---|---|---|")
    failures = 0
    for name in names:
        try:
            row = check(name, device, args.steps, args.num_samples)
            cpu = None if args.no_cpu else check(name, "cpu", args.steps, args.num_samples)
        except Exception as e:  # one model's failure is a row, not the end of the check
            failures += 1
            print(f"| {name} | | | | | | | | FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]} |")
            continue
        problems = row["misplaced"] + [f"{o} on another device" for o in row["wrong_outputs"]]
        failures += bool(problems)
        print(
            f"| {name} | {row['data']} "
            f"| {row['steps_per_second']:.1f} | {_versus(row, cpu, 'steps_per_second')} "
            f"| {row['samples_per_second']:.0f} | {_versus(row, cpu, 'samples_per_second')} "
            f"| {'ok' if not problems else 'NOT ON DEVICE: ' + ', '.join(problems[:5])} |"
        )
    print(f"\n{len(names) - failures} of {len(names)} models passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
