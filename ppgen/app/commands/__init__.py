"""The `ppgen` subcommands: one module each, with ``add_arguments(parser)`` and ``run(args) -> int``.

``COMMANDS`` maps each name to its one-line help, in the order `ppgen -h` shows them. The help lives
here, not in the modules, so that `ppgen -h` lists every command without importing any of them (each
module imports what its command needs: torch, Pyro, the models, matplotlib, ArviZ).
"""

COMMANDS = {
    "list": "list the registered models",
    "train": "train a model, evaluate it on the test split and write a run directory",
    "sample": "draw samples from a trained run into a .pt tensor or a .png figure",
    "complete": "fill in the masked pixels of test examples with a trained run (a .png grid or a .pt tensor)",
    "eval": "evaluate a trained run on the test split (its own data set, or --data)",
    "compare": "train every requested model on the same data; write report.md, report.json, report.html "
    "and figures",
    "graph": "count the parameters of a Bayes-net structure (independent, chain, markov) and draw its DAG",
    "inspect": "inspect one test point's latent posterior: NUTS vs the guide (ArviZ), PSIS k-hat, "
    "inference gaps",
}
