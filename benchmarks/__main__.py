"""``python -m benchmarks --help``."""

from benchmarks.suite import main

raise SystemExit(main())
