"""The code blocks of the documentation, and how the suite runs them (tests/e2e/test_docs.py).

Every fenced block of README.md, runtime/README.md and docs/*.md names what it is in its info
string, a language and options (```` ```bash server port=8000 ````):

- ``python``: run. A document's python blocks run in order as one script (one session, as a
  reader pasting them into one interpreter), in a scratch folder holding links to the checkout's
  top-level folders (``.venv``, ``runtime``, ``benchmarks``, ``Makefile``, ...).
- ``bash``: run in that folder, where the session has got to, with the project's environment
  activated (``.venv/bin`` first on ``PATH``), by ``bash -e`` (a failing command fails the
  block; a pipeline's status is its last command's, as in the reader's shell). Options:

  - ``server port=N``: a command that serves until stopped; it is started in the background,
    waited for until ``/v2/health/ready`` answers, and stopped at the end of the document (it
    must drain and exit 0). The suite runs it on a free port: ``N`` is replaced by that port in
    this block and the document's later ones.
  - ``venv``: runs in a fresh virtual environment without padlc (torch installed), where
    ``pip install`` does what it says (one environment for the whole test session; a
    ``server`` block may run there too).
  - ``dry-run``: commands the suite cannot run from inside itself run as their own dry run:
    ``make TARGET`` as ``make -n TARGET``, ``pytest ...`` as ``pytest --collect-only -q ...``.
  - ``long="ARGS"``: a measurement that takes minutes; the suite runs the block's first command
    with ``ARGS`` appended (smaller sizes, one round).
  - ``gpu``: needs a CUDA device; run only where one is (tests/e2e/test_docs.py reports the
    skip otherwise).
- ``python file=PATH``, ``cpp file=PATH``, ``cmake file=PATH``, ``dockerfile file=PATH``: a file
  the reader writes; the suite writes it at that point of the session. A Dockerfile's ``COPY``
  sources must exist there; it is built where docker is installed (the skip is reported
  otherwise).
- ``python shows=PATH`` (also ``text shows=PATH``): what a file written by the blocks before it
  holds: each line of the block must be a line of that file, in that order (``...``, blank and
  comment lines stand for what the excerpt leaves out; a trailing ``  # comment``, which in
  generated code names the reader's own file and line, is not compared).
- ``json``: must parse as JSON.
- ``text``: output, diagrams and formats; not code.

A block without a language, or with one not listed here, fails the suite.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DOCUMENTS",
    "LANGUAGES",
    "REPO",
    "Block",
    "blocks",
    "documents",
    "problems",
    "session_script",
]

REPO = Path(__file__).resolve().parents[1]
LANGUAGES = ("python", "bash", "text", "json", "cpp", "cmake", "dockerfile")
_OPTIONS = {
    "python": {"file", "shows"},
    "bash": {"server", "port", "venv", "dry-run", "long", "gpu"},
    "text": {"shows"},
    "json": set(),
    "cpp": {"file"},
    "cmake": {"file"},
    "dockerfile": {"file"},
}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)$")


def documents() -> list[Path]:
    """Every document of the project: the READMEs and docs/*.md (a new page is picked up)."""
    return [REPO / "README.md", REPO / "runtime" / "README.md", *sorted(REPO.glob("docs/*.md"))]


DOCUMENTS = documents()


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    options: dict[str, str] = field(hash=False)
    code: str

    @property
    def where(self) -> str:
        return f"{_shown(self.document)}:{self.line}"


def _shown(document: Path) -> str:
    """A document's path from the checkout's root (absolute for a page outside it)."""
    return str(document.relative_to(REPO) if document.is_relative_to(REPO) else document)


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of ``document``, their indentation (inside a list item) removed."""
    found = []
    lines = document.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, info = opening["indent"], opening["info"].strip()
        body = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        words = shlex.split(info)
        language = words[0] if words else ""
        options = dict(w.split("=", 1) if "=" in w else (w, "") for w in words[1:])
        found.append(Block(document, i + 1, language, options, "\n".join(body) + "\n"))
        i = j + 1
    return found


def problems(block: Block) -> list[str]:
    """What is wrong with a block's info string or, for ``json``, its content."""
    if block.language not in LANGUAGES:
        what = f"language {block.language!r}" if block.language else "no language"
        return [
            f"{block.where}: {what}; say what the block is: {', '.join(LANGUAGES)} "
            "(tests/docs_blocks.py)"
        ]
    unknown = sorted(set(block.options) - _OPTIONS[block.language])
    found = [f"{block.where}: unknown option {name!r} for {block.language}" for name in unknown]
    if block.language in ("cpp", "cmake", "dockerfile") and "file" not in block.options:
        found.append(f"{block.where}: a {block.language} block is a file: give it file=PATH")
    if block.language == "json":
        try:
            json.loads(block.code)
        except ValueError as exc:
            found.append(f"{block.where}: not JSON: {exc}")
    return found


# -- the session ----------------------------------------------------------------------------------
_HEADER = """\
# The code blocks of {document}, in order, as one session (generated by tests/docs_blocks.py).
from tests.e2e.docs_session import Session as _DocsSession

_docs = _DocsSession()
"""


def _dry_run(code: str) -> str:
    lines = []
    for line in code.splitlines():
        line = re.sub(r"^(\s*)make\b", r"\1make -n", line)
        line = re.sub(r"(-m pytest|\bpytest)\b", r"\1 --collect-only -q", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _long(code: str, extra: str) -> str:
    lines = code.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    command, _, comment = lines[first].partition("  #")
    lines[first] = f"{command.rstrip()} {extra}" + (f"  #{comment}" if comment else "")
    return "\n".join(lines) + "\n"


def session_script(
    document: Path, free_port: Callable[[], int], gpu: bool = False, docker: bool = False
) -> str:
    """One Python script running the blocks of ``document`` in order (python blocks as they are,
    the others through the session's helpers). Each ``server`` block gets a port from
    ``free_port``, which replaces its ``port=N`` in it and in the blocks after it. ``gpu`` and
    ``docker``: whether this machine has them (``gpu`` blocks run, Dockerfiles are built)."""
    parts = [_HEADER.format(document=_shown(document))]
    served: dict[str, int] = {}
    for block in blocks(document):
        options = block.options
        if block.language == "bash" and "server" in options:
            port = free_port()
            while port in served.values():  # free now, each its own: the servers run together
                port = free_port()
            served[options.get("port", "8000")] = port
        code = block.code
        for written, free in served.items():
            code = re.sub(rf"(?<=[:= ]){written}\b", str(free), code)
        parts.append(f"\n# ---- {block.where} ({block.language})\n")
        if block.language == "python" and not options:
            parts.append(code)
        elif "file" in options:
            parts.append(f"_docs.write({options['file']!r}, {code!r})\n")
            if block.language == "dockerfile":
                parts.append(f"_docs.dockerfile({options['file']!r}, {block.where!r}, {docker})\n")
        elif "shows" in options:
            parts.append(f"_docs.shows({options['shows']!r}, {code!r}, {block.where!r})\n")
        elif block.language == "bash":
            venv = "venv" in options
            if "server" in options:
                parts.append(f"_docs.server({code!r}, {block.where!r}, venv={venv})\n")
                continue
            if "gpu" in options and not gpu:
                continue  # tests/e2e/test_docs.py reports the skip
            if "dry-run" in options:
                code = _dry_run(code)
            if "long" in options:
                code = _long(code, options["long"])
            parts.append(f"_docs.shell({code!r}, {block.where!r}, venv={venv})\n")
    parts.append("\n_docs.close()\n")
    return "".join(parts)
