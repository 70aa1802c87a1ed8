"""`python -m ppgen`: the `ppgen` command."""

import sys

from ppgen.app.cli import main

sys.exit(main())
