"""One torch thread against torch's default thread count, one model of each family, in the same run.

For each family a small default model (the networks ppgen trains on its own data sets) trains ``--steps``
steps and then draws ``-n`` samples with the sampler ``ppgen compare`` scores it by, once with one thread
and once with torch's default (one per core; read from a fresh interpreter without ``OMP_NUM_THREADS``).
The table gives milliseconds per training step and per 1000 samples, wall and CPU (this process's own),
and the default / one-thread ratio (> 1: the default is slower). The two settings alternate model by
model, so that a change of load hits both alike; the load average is printed beside.

What ppgen's default (:mod:`ppgen.app.threads`: one thread) rests on: on a 2-core machine shared with
other jobs, one thread was as fast or faster for every family (see the README for the numbers).

    python benchmarks/threads.py [--steps 50] [-n 256] [--models mixture,made,...] [--budget-seconds 60]
"""

import argparse
import os
import subprocess
import sys
import time

import torch

import ppgen
from ppgen.app.samplers import fast_sampler, use_sampler
from ppgen.inference.evaluate import sampling_cost

# family -> (model, data set): one small default model each
MODELS = {
    "graphical": ("mixture", "digits"),
    "autoregressive": ("made", "digits"),
    "flow": ("nsf", "rings8"),
    "latent-variable": ("vae", "digits"),
    "diffusion": ("ddpm", "rings8"),
    "energy": ("ebm", "rings8"),
    "adversarial": ("gan", "rings8"),
}


def torch_default_threads() -> int:
    r"""The thread count torch picks by itself here (no ``OMP_NUM_THREADS``, no ``--threads``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = "import torch; print(torch.get_num_threads())"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)


def measure(name: str, data: str, threads: int, steps: int, n: int, budget: float, seed: int = 0) -> dict:
    r"""Milliseconds per training step and seconds per 1000 samples, wall and CPU, on ``threads`` threads."""
    torch.set_num_threads(threads)
    train = ppgen.data.load(data, "train")
    ppgen.seed_everything(seed)
    model = ppgen.create(name, train)
    ppgen.fit(model, train, steps=2, progress=False)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    result = ppgen.fit(model, train, steps=steps, budget_seconds=budget, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.eval()
    ppgen.seed_everything(seed)
    with use_sampler(model, fast_sampler(model)) as m:
        _, sample_wall, sample_cpu = sampling_cost(m.sample, n)
    done = max(result.steps, 1)
    return {
        "steps": done,
        "step_wall_ms": 1000 * wall / done,
        "step_cpu_ms": 1000 * cpu / done,
        "sample_wall": sample_wall,
        "sample_cpu": sample_cpu,
        "sampler": fast_sampler(model).label,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated families (default: all seven)")
    parser.add_argument("--steps", type=int, default=50, help="timed training steps (default 50)")
    parser.add_argument("-n", "--num-samples", type=int, default=256, help="timed samples (default 256)")
    parser.add_argument(
        "--budget-seconds", type=float, default=60, help="cap on one training measurement (default 60)"
    )
    parser.add_argument("--default-threads", type=int, default=None, help="default: what torch picks here")
    args = parser.parse_args(argv)
    default = args.default_threads or torch_default_threads()
    families = args.models.split(",") if args.models else list(MODELS)
    load = [os.getloadavg()[0]]
    rows = []
    for family in families:
        name, data = MODELS[family]
        one = measure(name, data, 1, args.steps, args.num_samples, args.budget_seconds)
        many = measure(name, data, default, args.steps, args.num_samples, args.budget_seconds)
        rows.append((family, name, data, one, many))
        load.append(os.getloadavg()[0])
    print(
        f"1 thread vs torch's default of {default} on {os.cpu_count()} cores; load average "
        f"{min(load):.1f}-{max(load):.1f}; {args.steps} training steps (fewer if --budget-seconds ran out), "
        f"{args.num_samples} samples by compare's sampler, after a warm-up; CPU = this process's seconds\n"
    )
    print(
        "| family | model | data | step ms, 1 thread (wall / CPU) | step ms, default (wall / CPU) "
        "| default / 1, wall | s per 1000 samples, 1 thread (wall / CPU) | default (wall / CPU) "
        "| default / 1, wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for family, name, data, one, many in rows:
        print(
            f"| {family} | {name} | {data} | {one['step_wall_ms']:.1f} / {one['step_cpu_ms']:.1f} "
            f"| {many['step_wall_ms']:.1f} / {many['step_cpu_ms']:.1f} "
            f"| {many['step_wall_ms'] / one['step_wall_ms']:.2f}x "
            f"| {one['sample_wall']:.3f} / {one['sample_cpu']:.3f} "
            f"| {many['sample_wall']:.3f} / {many['sample_cpu']:.3f} "
            f"| {many['sample_wall'] / one['sample_wall']:.2f}x ({one['sampler']}) |"
        )


if __name__ == "__main__":
    main()
