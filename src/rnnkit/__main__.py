"""``python -m rnnkit``: the same command line as the ``rnnkit`` script."""

import sys

from rnnkit.commands import main

if __name__ == "__main__":
    sys.exit(main())
