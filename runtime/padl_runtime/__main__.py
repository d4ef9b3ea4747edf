"""``python -m padl_runtime serve MODEL.padl`` (also the ``padl-runtime`` command)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from padl_runtime.serve import cli

__all__ = ["main", "parser"]

_DESCRIPTION = """\
padl-runtime: load, run and serve .padl artifacts built by padlc.

examples:
  padl-runtime serve model.padl --port 8000   # serve it over HTTP, with dynamic batching

`padl-runtime serve --help` shows the server's options."""


def _version() -> str:
    import importlib.metadata
    import platform

    import padl_runtime

    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a requirement
        torch_version = "not installed"
    return (
        f"padl-runtime {padl_runtime.__version__} (torch {torch_version}, "
        f"Python {platform.python_version()})"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="padl-runtime",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=_version())
    sub = root.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    examples = cli.EXAMPLES.format(prog="padl-runtime serve")
    cli.add_arguments(cli.add_command(sub, "serve", cli.HELP, examples))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; its exit status. ``padl-runtime`` alone prints the help."""
    root = parser()
    args = root.parse_args(argv)
    if args.command is None:
        root.print_help()
        return 0
    return cli.run(args, prog="padl-runtime serve")


if __name__ == "__main__":
    raise SystemExit(main())
