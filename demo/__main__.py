"""Run the demo command line: `python -m demo`."""

import sys

from .cli import main

sys.exit(main())
