"""``python -m padlc``: the same as the ``padlc`` command."""

import sys

from padlc.cli import main

if __name__ == "__main__":
    sys.exit(main())
