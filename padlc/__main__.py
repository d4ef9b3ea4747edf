"""``python -m padlc``: the same as the ``padlc`` command."""

import sys

from padlc.cli import main

sys.exit(main())
