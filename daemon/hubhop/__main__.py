"""`python -m hubhop` is the `hubhop` command."""

import sys

from hubhop.cli import main

sys.exit(main())
