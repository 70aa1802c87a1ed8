"""`ppgen list`: the registered models with their family, density kind and data kinds."""

from ppgen.base import get, model_names


def add_arguments(p):
    pass


def run(args) -> int:
    rows = [(n, get(n)) for n in model_names()]
    print(f"{'model':<16} {'family':<16} {'density':<13} {'data kinds':<30} conditional")
    for name, cls in rows:
        kinds = "/".join(cls.kinds) + (" (images)" if cls.images_only else "")
        print(f"{name:<16} {cls.family:<16} {cls.density:<13} {kinds:<30} {'yes' if cls.conditional else ''}")
    return 0
