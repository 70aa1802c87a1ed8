"""The model zoo: one file per family; importing this package registers every model.

One import per line, so that each family adds its own line (`ppgen list` orders them by family).
"""

from ppgen.models import (
    autoencoder,  # noqa: F401
    bayesnet,  # noqa: F401
    diffusion,  # noqa: F401
    ebm,  # noqa: F401
    flows,  # noqa: F401
    fvsbn,  # noqa: F401
    gan,  # noqa: F401
    glow,  # noqa: F401
    independent,  # noqa: F401
    made,  # noqa: F401
    mixture,  # noqa: F401
    nade,  # noqa: F401
    pixelcnn,  # noqa: F401
    pixelrnn,  # noqa: F401
    score,  # noqa: F401
    vae,  # noqa: F401
)
