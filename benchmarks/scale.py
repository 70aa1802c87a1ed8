"""Beyond one process: a comparison grid on 1 and 2 local processes and on Ray, and a data-parallel fit
on 1 and N processes, in one run, as ratios.

1. The grid: 2 models x 2 seeds on rings8 (1,000 training points; ``mixture`` for 10 epochs and a small
   ``realnvp`` for 40, no cache, the evaluation protocol cut to what the table needs), run by
   ``run_grid`` with the local pool at ``--jobs 1`` and ``--jobs 2`` and with Ray (a local instance of
   2 CPUs, its start-up included). Wall seconds and their ratio to ``--jobs 1``; the test NLLs must
   agree across the three (printed as the largest difference).
2. The data-parallel fit: ``made`` on digits (hidden 500-500), the same global batch, ``--steps`` timed
   steps after ``--warmup`` steps, on 1 process and on ``--nproc`` processes (gloo on CPU; ``--backend
   nccl`` on the GPUs present, one each). Seconds per step (rank 0's wall clock, and its CPU seconds),
   and the speed-up.

Every process runs one torch thread (``--threads``), as ``ppgen compare`` runs its cells.

    python benchmarks/scale.py [--backend gloo|nccl] [--nproc 2] [--steps 60] [--batch-size 256]
                               [--skip-grid] [--skip-ray]
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ppgen
from ppgen.app.grid import Cell, run_grid
from ppgen.inference.distributed import free_port

PROTOCOL = {"num_samples": 10, "n_mode_samples": 1000, "n_image_samples": 0, "n_sweep": 0}


def grid_cells() -> list[Cell]:
    models = [
        ("mixture", {"components": 8}, {"epochs": 10}),
        ("realnvp", {"num_layers": 2, "hidden_dims": (32, 32)}, {"epochs": 40}),
    ]
    return [Cell(m, c, f, seed=s, **PROTOCOL) for m, c, f in models for s in (0, 1)]


def time_grid(executor_name: str, jobs: int, train, test) -> tuple[float, float, list]:
    executor = None
    if executor_name == "ray":
        from ppgen.app.executors import RayExecutor

        executor = RayExecutor(num_cpus=jobs)
    wall, cpu = time.perf_counter(), time.process_time()
    results = run_grid(grid_cells(), train, test, jobs, use_cache=False, progress=False, executor=executor)
    rows = [r for r, _ in results]
    if any("error" in r for r in rows):
        raise SystemExit(f"{executor_name}: a cell failed: {[r['error'] for r in rows if 'error' in r]}")
    return time.perf_counter() - wall, time.process_time() - cpu, [r["test_nll_nats"] for r in rows]


def fit_worker(rank: int, world: int, port: int, args, queue) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if args.backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(args.backend, rank=rank, world_size=world)
    if args.backend == "nccl":
        device = torch.device("cuda", rank)
    train = ppgen.data.load("digits", "train")
    ppgen.seed_everything(0)
    model = ppgen.create("made", train).to(device)
    ppgen.fit(model, train, steps=args.warmup, batch_size=args.batch_size, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    result = ppgen.fit(model, train, steps=args.steps, batch_size=args.batch_size, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if rank == 0:
        queue.put((wall / result.steps, cpu / result.steps, result.log[-1]["loss"]))
    if world > 1:
        dist.destroy_process_group()


def time_fit(world: int, args) -> tuple[float, float, float]:
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(fit_worker, args=(world, free_port(), args, queue), nprocs=world, start_method="spawn")
    return queue.get()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--nproc", type=int, default=None, help="default: 2 (gloo), the GPUs present (nccl)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256, help="the global batch")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--skip-ray", action="store_true")
    args = p.parse_args()
    if args.backend == "nccl" and not torch.cuda.is_available():
        raise SystemExit("--backend nccl needs CUDA GPUs")
    nproc = args.nproc or (torch.cuda.device_count() if args.backend == "nccl" else 2)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {os.cpu_count()} cores, load average {load:.1f} at start, {args.threads} thread(s)/process")

    if not args.skip_grid:
        train, test = ppgen.data.load("rings8", "train", n=1000), ppgen.data.load("rings8", "test", n=500)
        runs = [("local --jobs 1", "local", 1), ("local --jobs 2", "local", 2)]
        if not args.skip_ray:
            runs.append(("ray (local, 2 CPUs)", "ray", 2))
        print("\n## grid: mixture + realnvp x seeds 0, 1 on rings8, 1,000 points (4 cells, no cache)\n")
        print("| executor | wall s | driver CPU s | vs jobs 1 | max |NLL diff| |")
        print("|---|---:|---:|---:|---:|")
        base = None
        for label, name, jobs in runs:
            wall, cpu, nlls = time_grid(name, jobs, train, test)
            base = base or (wall, nlls)
            diff = max(abs(a - b) for a, b in zip(nlls, base[1]))
            print(f"| {label} | {wall:.1f} | {cpu:.1f} | {base[0] / wall:.2f}x | {diff:.2g} |")

    print(f"\n## data-parallel fit: made (500-500) on digits, global batch {args.batch_size}, "
          f"{args.steps} steps after {args.warmup}, backend {args.backend}\n")  # fmt: skip
    print("| processes | s/step (wall) | CPU s/step (rank 0) | speed-up | last loss |")
    print("|---:|---:|---:|---:|---:|")
    one = time_fit(1, args)
    print(f"| 1 | {one[0]:.4f} | {one[1]:.4f} | 1.00x | {one[2]:.3f} |")
    many = time_fit(nproc, args)
    print(f"| {nproc} | {many[0]:.4f} | {many[1]:.4f} | {one[0] / many[0]:.2f}x | {many[2]:.3f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# load average {load:.1f} at the end")


if __name__ == "__main__":
    main()
