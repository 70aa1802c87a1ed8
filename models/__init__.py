"""The model zoo: one file per family; importing this package registers every model.

One import per line, so that each family adds its own line (`ppgen list` orders them by family).
"""

from ppgen.models import independent  # noqa: F401
from ppgen.models import mixture  # noqa: F401
from ppgen.models import bayesnet  # noqa: F401
from ppgen.models import fvsbn  # noqa: F401
from ppgen.models import nade  # noqa: F401
from ppgen.models import made  # noqa: F401
from ppgen.models import pixelcnn  # noqa: F401
from ppgen.models import pixelrnn  # noqa: F401
from ppgen.models import flows  # noqa: F401
from ppgen.models import glow  # noqa: F401
from ppgen.models import vae  # noqa: F401
from ppgen.models import diffusion  # noqa: F401
from ppgen.models import score  # noqa: F401
from ppgen.models import ebm  # noqa: F401
from ppgen.models import gan  # noqa: F401
