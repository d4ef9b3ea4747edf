"""The ``padlc`` command line: argument parsing and printing only (the work is in the library).

    padlc build MODULE:ATTR -o model.padl --inputs MODULE:ATTR [--backend ...] [--device ...]
    padlc inspect model.padl [--code]
    padlc trust model.padl | padlc sign model.padl --key KEY | padlc keygen KEY
    padlc serve model.padl [--port 8000] [--max-batch 64] ...

Subcommands live in :data:`COMMANDS` (name -> :class:`Command`); adding one is adding an entry.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from padlc import cli_trust

__all__ = ["COMMANDS", "Command", "import_file", "main", "resolve"]


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file as the top-level module named after it, as ``python path`` would make
    it importable for its own worker processes (once: a second call returns the same module)."""
    name = path.stem
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_module(name: str) -> ModuleType:
    """``importlib.import_module``, with a plain error when the module itself is not found (a
    module that is found but fails inside keeps its own traceback: that is the user's code)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != name and not name.startswith(missing + "."):
            raise  # something the module imports is missing: its traceback says where
        raise SystemExit(
            f"padlc: cannot import {name!r}: no module {missing!r} on the path (the current "
            f"directory {os.getcwd()} and PYTHONPATH). Run padlc from the directory that holds "
            f"it, add that directory to PYTHONPATH, or give the file: path/to/{name.split('.')[-1]}.py:ATTR"
        ) from None


def resolve(reference: str) -> Any:
    """``MODULE:ATTR`` -> the object; MODULE is a dotted module or a path to a ``.py`` file."""
    module_name, sep, attr = reference.rpartition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(
            f"padlc: expected MODULE:ATTR (e.g. mypackage.models:pipeline), got {reference!r}"
        )
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise SystemExit(f"padlc: no file {path}")
        module = import_file(path)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = _import_module(module_name)
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise SystemExit(f"padlc: {module_name} has no attribute {attr!r}") from None
    return value


# -- build ----------------------------------------------------------------------------------------
def _configure_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pipeline", help="the pipeline, as MODULE:ATTR (MODULE dotted or a .py path)"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="the artifact directory to write (model.padl); a path without the .padl suffix "
        "gets it (-o out/model writes out/model.padl)",
    )
    parser.add_argument(
        "--inputs", required=True, help="MODULE:ATTR of a list of raw example inputs (at least 2)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        type=_backends,
        help="how to compile the forward stage: auto (export, else torchscript, else eager), "
        "eager, export, aoti, torchscript or onnx; a comma-separated list (export,onnx) keeps "
        "one forward per backend in the artifact, preferred in that order (default: auto)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--max-batch", type=int, default=None, help="largest batch the forward accepts (at least 2)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing artifact")
    parser.add_argument(
        "--no-move-to-forward",
        dest="move_to_forward",
        action="store_false",
        help="keep trailing per-item tensor steps in the preprocess (no stage-boundary optimisation)",
    )


_BACKEND_CHOICES = ("auto", "eager", "export", "aoti", "torchscript", "onnx")


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in _BACKEND_CHOICES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend {', '.join(map(repr, unknown)) or repr(text)}; choose from "
            f"{', '.join(_BACKEND_CHOICES)}"
        )
    return names


def _run_build(args: argparse.Namespace) -> int:
    from padlc import PadlcError
    from padlc.builder import build

    pipeline = resolve(args.pipeline)
    inputs = resolve(args.inputs)
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
        for b in f.backends:
            error = (
                ""
                if b.max_abs_error is None
                else f", max abs error {b.max_abs_error:.3g} (tolerance {b.tolerance:g})"
            )
            arch = f", arch {b.arch}" if b.arch else ""
            lines.append(
                f"  backend {b.name}: {', '.join(b.files)}{arch}{error}, lowered in {b.build_seconds:.1f} s"
            )
            if b.note:
                lines.append(f"    note: {b.note}")
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


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "train, save, build, load and benchmark the built-in digits example",
        _configure_demo,
        _run_demo,
    ),
    "build": Command(
        "compile a pipeline into a verified .padl artifact", _configure_build, _run_build
    ),
    "inspect": Command(
        "describe a .padl artifact (and show its code) without running its code",
        _configure_inspect,
        _run_inspect,
    ),
    "trust": Command(
        "trust an artifact you have read: it loads without trust_code for you from now on",
        cli_trust.configure_trust,
        cli_trust.run_trust,
    ),
    "sign": Command(
        "sign an artifact with your ed25519 key, for those who trust your public key",
        cli_trust.configure_sign,
        cli_trust.run_sign,
    ),
    "keygen": Command(
        "make an ed25519 key pair for padlc sign", cli_trust.configure_keygen, cli_trust.run_keygen
    ),
    "serve": Command(
        "serve a built .padl artifact over HTTP, with dynamic batching",
        _configure_serve,
        _run_serve,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="padlc", description="padlc: build and inspect PyTorch pipelines."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.help, description=command.help))
    args = parser.parse_args(argv)
    return COMMANDS[args.command].run(args)
