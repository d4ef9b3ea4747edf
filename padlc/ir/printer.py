"""A readable, indented listing of an IR tree, one node per line with its source location."""

from __future__ import annotations

import os

from padlc.ir import nodes as ir
from padlc.ir.trace import children

__all__ = ["format_ir", "format_location"]


def format_location(location: tuple[str, int] | None) -> str:
    if location is None:
        return ""
    filename, line = location
    return f"{os.path.basename(filename)}:{line}"


def _head(node: ir.Node) -> str:
    kind = type(node).__name__
    if isinstance(node, ir.Call):
        extra = f" {node.kind} `{node.label}`" + (" (unpacks)" if node.unpack else "")
    elif isinstance(node, ir.Attr):
        extra = f" `{node.label}`"
    elif isinstance(node, ir.Rollout | ir.Parallel):
        extra = f" -> ({', '.join(node.fields)})"
    elif isinstance(node, ir.Switch):
        extra = f" mode={node.mode}"
    elif isinstance(node, ir.Try):
        extra = f" except ({', '.join(e.__name__ for e in node.exceptions)})"
    else:
        extra = ""
    return kind + extra


def format_ir(node: ir.Node, indent: str = "  ") -> str:
    """The tree as text::

    Seq
      Call function `tokenize`   (pipelines.py:12)
      Batch
    """
    lines: list[str] = []

    def visit(current: ir.Node, depth: int) -> None:
        where = format_location(current.location)
        lines.append(f"{indent * depth}{_head(current)}" + (f"   ({where})" if where else ""))
        for child in children(current):
            visit(child, depth + 1)

    visit(node, 0)
    return "\n".join(lines)
