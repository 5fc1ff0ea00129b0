"""`python -m costspan COMMAND`: the same as the `costspan` console script."""

import sys

from costspan.cli import main

sys.exit(main())
