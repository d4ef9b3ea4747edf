"""The ``serve`` command, shared by ``padlc serve`` and ``python -m padl_runtime serve``:
argument parsing and messages only (the work is in :mod:`padl_runtime.serve.server`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES", "HELP", "add_arguments", "add_command", "options_from", "run"]

HELP = "serve a built .padl artifact over HTTP, with dynamic batching"
#: The examples under ``--help`` (``{prog}``: ``padlc serve`` or ``padl-runtime serve``).
EXAMPLES = """\
{prog} model.padl --port 8000       # then: curl -s localhost:8000/predict -d '{{"input": ...}}'
{prog} model.padl --host 0.0.0.0 --max-batch 32 --max-wait-ms 5 --workers 2
{prog} model.padl --trusted-key team.pub   # an artifact signed elsewhere (docs/security.md)"""


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    examples: str,
) -> argparse.ArgumentParser:
    """A command's parser under ``commands``, its ``--help`` ending with ``examples`` (one per
    line): the form of every command of ``padlc`` and ``padl-runtime``."""
    return commands.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``padlc serve`` adds exactly these)."""
    parser.add_argument("artifact", help="a built .padl directory")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=64,
        help="most items per forward batch (default: 64; capped by the artifact's own max batch)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=2.0,
        help="longest a batch is held open, after its first item, for items still arriving (default: 2)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes for the preprocess and postprocess (default: 0, in the forward thread)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="where the forward runs: cpu, cuda, cuda:1 (default: the artifact's device when available, else cpu)",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="which of the artifact's forwards to run: export, aoti, torchscript, onnx, eager (default: the first usable one)",
    )
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="run the artifact's code although it is not in your trust store nor signed by a "
        "key you trust (read it first: padlc inspect --code; docs/security.md)",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=None,
        metavar="PATH",
        help="an ed25519 public key whose signature makes the artifact trusted (repeatable)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="items waiting for a batch before requests get 503 (default: 1024)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before a request gets 504 (default: 30)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="the model's name in /v2/models/NAME (default: the artifact's directory name without .padl)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="(default: info)",
    )


def options_from(args: argparse.Namespace) -> Any:
    """The :class:`~padl_runtime.serve.ServeOptions` of parsed arguments. Options of
    :func:`padl_runtime.load` (``--device``, ``--backend``, ``--trust-code``, ``--trusted-key``)
    go into ``load_options``; a command that adds one of its own puts it in
    ``args.load_options`` (a dict)."""
    from padl_runtime.serve.options import ServeOptions

    load_options = dict(getattr(args, "load_options", None) or {})
    for name in ("device", "backend"):
        value = getattr(args, name, None)
        if value is not None:
            load_options[name] = value
    if getattr(args, "trust_code", False):
        load_options["trust_code"] = True
    if getattr(args, "trusted_key", None):
        missing = [key for key in args.trusted_key if not Path(key).expanduser().is_file()]
        if missing:
            raise ValueError(
                f"--trusted-key {missing[0]}: no such file. Give the public key file (`padlc "
                "keygen KEY` writes KEY and KEY.pub: the .pub one)."
            )
        load_options["trusted_keys"] = list(args.trusted_key)
    return ServeOptions(
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        workers=args.workers,
        max_queue=args.max_queue,
        timeout=args.timeout,
        model_name=args.name,
        log_level=args.log_level,
        load_options=load_options,
    )


def run(args: argparse.Namespace, prog: str = "padl-runtime serve") -> int:
    """Serve until SIGTERM or Ctrl-C: 0 after a clean drain, 1 when the artifact cannot be loaded
    or the server cannot start."""
    from padl_runtime.errors import ArtifactError

    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    try:
        from padl_runtime.serve.server import serve
    except ImportError as exc:
        print(
            f"{prog}: the server needs {exc.name or 'its dependencies'}, which is not installed. "
            "Install the server's extra: pip install 'padl-runtime[serve]'",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(format="%(levelname)s:     %(message)s")
    logging.getLogger("padl_runtime.serve").setLevel(args.log_level.upper())
    try:
        return serve(args.artifact, options)
    except (ArtifactError, ValueError, OSError) as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
