"""`python -m bench.cluster`: see the package's docstring."""

import sys

from bench.cluster.cli import main

sys.exit(main())
