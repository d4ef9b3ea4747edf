"""``python -m padl_runtime serve MODEL.padl`` (also the ``padl-runtime`` command)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from padl_runtime.serve import cli

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="padl-runtime", description="padl-runtime: run built .padl artifacts."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_arguments(sub.add_parser("serve", help=cli.HELP, description=cli.HELP))
    args = parser.parse_args(argv)
    return cli.run(args, prog="padl-runtime serve")


if __name__ == "__main__":
    raise SystemExit(main())
