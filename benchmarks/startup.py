"""Start-up time of the `ppgen` command against ``python -c "import torch"``, measured in the same run.

Each command runs ``--repeats`` times in a fresh interpreter; the table gives the best wall and the best
CPU seconds (user + system of the child, from ``resource.getrusage``), their ratio to importing torch,
and which heavy libraries the command imported. CPU time is the better measure on a shared machine:
wall time there counts the time other processes held the cores. Bar (issue 18): `ppgen --help` and
`ppgen list` at most 1.5x the time of importing torch.

    python benchmarks/startup.py [--repeats 5]
"""

import argparse
import os
import resource
import subprocess
import sys
import time

HEAVY = ("torch", "pyro", "networkx", "jax", "numpyro", "arviz", "matplotlib", "sklearn", "scipy", "pandas")
COMMANDS = {
    'python -c "import torch"': ["-c", "import torch"],
    "ppgen --help": ["-m", "ppgen", "--help"],
    "ppgen list": ["-m", "ppgen", "list"],
    "ppgen train --help": ["-m", "ppgen", "train", "--help"],
    "ppgen compare --help": ["-m", "ppgen", "compare", "--help"],
}
# runs the CLI in-process and prints which of HEAVY it imported
PROBE = (
    "import sys, io, contextlib\n"
    "from ppgen.app.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        main(sys.argv[1:])\n"
    "    except SystemExit:\n"
    "        pass\n"
    f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def timed(args: list[str]) -> tuple[float, float]:
    r"""(wall seconds, CPU seconds) of ``python ARGS`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, env=os.environ)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imported(args: list[str]) -> str:
    r"""The heavy libraries that ``ppgen ARGS`` imports ("-" for none)."""
    if args[:2] != ["-m", "ppgen"]:
        return "torch"
    out = subprocess.run([sys.executable, "-c", PROBE, *args[2:]], check=True, capture_output=True, text=True)
    return out.stdout.strip() or "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command; the best is kept")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = {}
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits every command alike
        for name, command in COMMANDS.items():
            wall, cpu = timed(command)
            best = rows.get(name, (float("inf"), float("inf")))
            rows[name] = (min(best[0], wall), min(best[1], cpu))
    base_wall, base_cpu = rows['python -c "import torch"']
    load = os.getloadavg()[0]
    print(
        f"Start-up, best of {args.repeats} runs each, {os.cpu_count()} cores, load average {load:.1f} "
        f"(CPU = user + system seconds of the child process)\n"
    )
    print("| command | wall s | CPU s | wall / torch | CPU / torch | heavy imports |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in rows.items():
        print(
            f"| `{name}` | {wall:.2f} | {cpu:.2f} | {wall / base_wall:.2f}x | {cpu / base_cpu:.2f}x "
            f"| {imported(COMMANDS[name])} |"
        )


if __name__ == "__main__":
    main()
