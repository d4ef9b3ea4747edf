"""The ``padlc`` command line: argument parsing and printing only (the work is in the library).

    padlc build pl -o model.padl                     # pl.py's pipeline, its `example_inputs`
    padlc build MODULE:ATTR -o model.padl --inputs MODULE:ATTR [--backend ...] [--device ...]
    padlc inspect model.padl [--code]
    padlc trust model.padl | padlc sign model.padl --key KEY | padlc keygen KEY
    padlc serve model.padl [--port 8000] [--max-batch 64] ...

Subcommands live in :data:`COMMANDS` (name -> :class:`Command`); adding one is adding an entry.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from padlc import cli_trust
from padlc.locate import (
    EXAMPLES_VARIABLE,
    PIPELINE_VARIABLE,
    import_file,
    locate_inputs,
    locate_pipeline,
    resolve,
)

if TYPE_CHECKING:
    from padlc.lowering import BackendName

__all__ = [
    "COMMANDS",
    "Command",
    "backend_names",
    "import_file",
    "inspect_text",
    "main",
    "parser",
    "resolve",
    "versions",
]


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: shown under ``padlc COMMAND --help``: one command line a line, each with a comment
    examples: str = ""


# -- build ----------------------------------------------------------------------------------------
def _configure_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pipeline",
        help="the pipeline: MODULE (a dotted module or a .py path: its only pipeline, or the one "
        f"named `{PIPELINE_VARIABLE}`) or MODULE:ATTR",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="the artifact directory to write (model.padl); a path without the .padl suffix "
        "gets it (-o out/model writes out/model.padl)",
    )
    parser.add_argument(
        "--inputs",
        default=None,
        help="a list of raw example inputs (at least 2): MODULE:ATTR, or ATTR of the pipeline's "
        f"module (default: its `{EXAMPLES_VARIABLE}`)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        type=backend_names,
        help="how to compile the forward stage: auto (the fastest of export, onnx and "
        "torchscript that verify, else eager), "
        "eager, export, aoti, torchscript or onnx; a comma-separated list (export,onnx) keeps "
        "one forward per backend in the artifact, preferred in that order (default: auto)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--max-batch", type=int, default=None, help="largest batch the forward accepts (at least 2)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing artifact")
    parser.add_argument(
        "--slim",
        action="store_true",
        help="a serving artifact without the lineage (pipeline.py and its weights): smaller; "
        "padl_runtime.load serves it, padlc.load cannot rebuild it",
    )
    parser.add_argument(
        "--no-move-to-forward",
        dest="move_to_forward",
        action="store_false",
        help="keep trailing per-item tensor steps in the preprocess (no stage-boundary optimisation)",
    )


def backend_names(text: str) -> tuple[BackendName, ...]:
    """``--backend export,onnx`` as names, each a known backend (the closest one suggested)."""
    from padlc.lowering import choices

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names or (text,):
        if name not in choices():
            close = difflib.get_close_matches(name, choices(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}{hint}; choose from {', '.join(choices())}, or a "
                "comma-separated list of them (export,onnx)"
            )
    return cast("tuple[BackendName, ...]", names)


def _run_build(args: argparse.Namespace) -> int:
    from padlc import PadlcError
    from padlc.builder import build

    pipeline, module = locate_pipeline(args.pipeline)
    inputs = locate_inputs(args.inputs, module, args.pipeline)
    try:
        result = build(
            pipeline,
            args.output,
            inputs=inputs,
            backend=args.backend,
            device=args.device,
            max_batch=args.max_batch,
            force_overwrite=args.force,
            move_to_forward=args.move_to_forward,
            slim=args.slim,
            module=args.pipeline,
            log=lambda message: print(f"padlc: {message}", file=sys.stderr),
        )
    except (PadlcError, OSError) as exc:  # OSError: writing the artifact (a full disk)
        print(f"padlc build failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    return 0


# -- inspect --------------------------------------------------------------------------------------
def _configure_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="a .padl directory")
    parser.add_argument(
        "--code",
        action="store_true",
        help="print the artifact's Python files (verified against its manifest, not run)",
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def inspect_text(path: str | Path, code: bool = False) -> str:
    """What ``padlc inspect`` prints: read from manifest.json (and, with ``code``, the verified
    Python files); no artifact code is run."""
    from padl_runtime.artifact import Artifact
    from padlc.cli_trust import code_text, trust_text

    root = Path(path)
    artifact = Artifact.open(root)
    m = artifact.manifest
    lines = [
        f"{root}  ({m.kind}, format {m.format_version}, padlc {m.padlc_version}, torch {m.torch_version})",
        f"pipeline: {m.pipeline}",
    ]
    # A build records where the pipeline came from; older builds put it in `module`.
    source = m.extra.get("build", {}).get("source") or (
        m.module if m.kind == "built" and not m.module.endswith(".py") else ""
    )
    if source:
        lines.append(f"from: {source}")
    lines += [
        "stages:",
        f"  preprocess:  {m.stages.preprocess}",
        f"  forward:     {m.stages.forward}",
        f"  postprocess: {m.stages.postprocess}",
    ]
    f = m.forward
    if f is not None:
        lines.append(
            f"forward (device {f.device}"
            + (f", max batch {f.max_batch}" if f.max_batch else "")
            + "):"
        )
        sizes = {e.path: e.size for e in m.files}
        for b in f.backends:
            error = (
                ""
                if b.max_abs_error is None
                else f", max abs error {b.max_abs_error:.3g} (tolerance {b.tolerance:g})"
            )
            arch = f", arch {b.arch}" if b.arch else ""
            size = _size(sum(sizes.get(path, 0) for path in b.files))
            lines.append(
                f"  backend {b.name}: {', '.join(b.files)} ({size}){arch}{error}, lowered in "
                f"{b.build_seconds:.1f} s"
            )
            shared = _shared_weights(artifact, b.weights)
            if shared:
                lines.append(f"    reads its weights from {shared} (stored once, with the lineage)")
            if b.note:
                lines.append(f"    note: {b.note}")
        if f.modes:
            for mode in ("infer", "eval"):
                stages = f.mode(mode)
                if stages.unavailable:
                    lines.append(f"  {mode}_apply: refused: {stages.unavailable}")
                else:
                    lines.append(
                        f"  {mode}_apply: {stages.preprocess} >> forward >> {stages.postprocess}"
                    )
        for kind, signature in (("inputs", f.inputs), ("outputs", f.outputs)):
            text = ", ".join(
                f"{s['name']}: {s['dtype']}[{', '.join(map(str, s['shape']))}]" for s in signature
            )
            lines.append(f"  {kind}: {text or '-'}")
        moved = ", ".join(f.moved_to_forward) or "none"
        lines.append(f"  moved to forward (stage-boundary optimisation): {moved}")
        lines.append(
            f"generated code: {f.stage_module} (preprocess, postprocess)"
            + (f"; {f.graph_source} (forward graph)" if f.graph_source else "")
        )
    if m.cpp is not None:
        if m.cpp.run_available:
            lines.append(f"C++: forward ({m.cpp.forward_file}) and run() ({m.cpp.pipeline_file})")
        elif m.cpp.forward_file:
            lines.append(
                f"C++: forward ({m.cpp.forward_file}); run() not available: {m.cpp.reason}"
            )
        else:
            lines.append(f"C++: not available: {m.cpp.reason}")
    if m.kind == "built" and not m.module:
        lines.append(f"lineage: none, padlc.load cannot rebuild this pipeline: {m.without_lineage}")
        for entry in m.compiled_only:
            where = f" ({entry.where})" if entry.where else ""
            lines.append(f"  compiled-only: `{entry.transform}`{where}: {entry.reason}")
    elif m.module:
        weights = sum(e.size for e in m.files if e.path == "weights.safetensors")
        lines.append(
            f"lineage: {m.module}"
            + (f", weights.safetensors ({_size(weights)})" if weights else "")
            + " (padlc.load rebuilds the trainable pipeline)"
        )
    build = m.extra.get("build", {})
    for name, outcome in build.get("attempts", []):
        lines.append(f"build attempt {name}: {outcome}")
    if "requirements.txt" in m.listed():
        pins = [
            line
            for line in artifact.text("requirements.txt").splitlines()
            if line and not line.startswith("#")
        ]
        lines.append(f"requirements: {', '.join(pins)}")
    lines.append(trust_text(artifact))
    lines.append(f"files ({_size(sum(e.size for e in m.files))} in all):")
    lines += [f"  {e.path:<44} {_size(e.size):>10}" for e in m.files]
    if code:
        lines += ["", code_text(artifact)]
    return "\n".join(lines)


def _shared_weights(artifact: Any, weights_map: str) -> str:
    """``weights.safetensors (42 tensors)``: what a backend's weights map says it reads."""
    import json

    from padl_runtime.errors import ArtifactError

    if not weights_map:
        return ""
    try:
        spec = json.loads(artifact.text(weights_map))
        return f"{spec['file']} ({len(spec['tensors'])} tensors)"
    except (ArtifactError, ValueError, KeyError, TypeError):
        return f"the file its map {weights_map} names (unreadable)"


def _run_inspect(args: argparse.Namespace) -> int:
    from padl_runtime.errors import ArtifactError

    try:
        print(inspect_text(args.artifact, code=args.code))
    except ArtifactError as exc:
        print(f"padlc inspect: {exc}", file=sys.stderr)
        return 1
    return 0


# -- serve ----------------------------------------------------------------------------------------
def _configure_serve(parser: argparse.ArgumentParser) -> None:
    from padl_runtime.serve.cli import add_arguments

    add_arguments(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from padl_runtime.serve.cli import run

    return run(args, prog="padlc serve")


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    from padlc.demo import add_arguments

    add_arguments(parser)


def _run_demo(args: argparse.Namespace) -> int:
    from padlc.demo import main as demo_main

    return demo_main(args)


def _serve_examples() -> str:
    from padl_runtime.serve.cli import EXAMPLES

    return EXAMPLES.format(prog="padlc serve")


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "train, save, build, load and benchmark the built-in digits example",
        _configure_demo,
        _run_demo,
        "padlc demo                       # into a temporary directory, removed afterwards\n"
        "padlc demo --out demo --backend torchscript   # keep its files in ./demo",
    ),
    "build": Command(
        "compile a pipeline into a verified .padl artifact",
        _configure_build,
        _run_build,
        "padlc build pl -o model.padl     # pl.py's pipeline, verified on its `example_inputs`\n"
        "padlc build pl:classifier -o model.padl --inputs examples --backend torchscript\n"
        "padlc build path/to/pl.py -o model.padl --backend export,onnx --max-batch 64",
    ),
    "inspect": Command(
        "describe a .padl artifact (and show its code) without running its code",
        _configure_inspect,
        _run_inspect,
        "padlc inspect model.padl         # stages, backends, files, whether you trust it\n"
        "padlc inspect model.padl --code  # and its Python files, verified, not run",
    ),
    "trust": Command(
        "trust an artifact you have read: it loads without trust_code for you from now on",
        cli_trust.configure_trust,
        cli_trust.run_trust,
        "padlc inspect model.padl --code  # read what loading it would run\n"
        "padlc trust model.padl           # then remember it as trusted",
    ),
    "sign": Command(
        "sign an artifact with your ed25519 key, for those who trust your public key",
        cli_trust.configure_sign,
        cli_trust.run_sign,
        "padlc sign model.padl --key team       # writes model.padl/manifest.sig\n"
        "PADL_TRUSTED_KEYS=team.pub padlc serve model.padl   # where team.pub is trusted",
    ),
    "keygen": Command(
        "make an ed25519 key pair for padlc sign",
        cli_trust.configure_keygen,
        cli_trust.run_keygen,
        "padlc keygen team                # writes team (secret) and team.pub",
    ),
    "serve": Command(
        "serve a built .padl artifact over HTTP, with dynamic batching",
        _configure_serve,
        _run_serve,
        "",  # the runtime's own examples (padl_runtime.serve.cli.EXAMPLES), shown by parser()
    ),
}

_DESCRIPTION = """\
padlc: write a PyTorch pipeline once, save it with its code, build it for serving.

examples:
  padlc demo                          # train, save, build and run the built-in example
  padlc build pl -o model.padl        # compile pl.py's pipeline into a verified artifact
  padlc inspect model.padl            # what an artifact holds, without running it
  padlc serve model.padl --port 8000  # serve it over HTTP, batching concurrent requests

`padlc COMMAND --help` shows a command's options and examples."""


def versions() -> str:
    """``padlc 0.1.0 (padl-runtime 0.1.0, torch 2.13.0, Python 3.11.7)``: read from the installed
    distributions, so that ``--version`` answers without importing torch."""
    import importlib.metadata
    import platform

    import padl_runtime
    from padlc import __version__

    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - padlc needs torch
        torch_version = "not installed"
    return (
        f"padlc {__version__} (padl-runtime {padl_runtime.__version__}, torch {torch_version}, "
        f"Python {platform.python_version()})"
    )


def parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per entry of :data:`COMMANDS`, each with its
    examples under ``--help``."""
    from padl_runtime.serve.cli import add_command

    root = argparse.ArgumentParser(
        prog="padlc",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=versions())
    sub = root.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        examples = command.examples or (_serve_examples() if name == "serve" else "")
        command.configure(add_command(sub, name, command.help, examples))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; its exit status. ``padlc`` alone prints the help."""
    root = parser()
    args = root.parse_args(argv)
    if args.command is None:
        root.print_help()
        return 0
    return COMMANDS[args.command].run(args)
