"""Drawing a pipeline: the ASCII picture behind ``print(p)`` and the HTML one for Jupyter.

The picture shows the data flow top to bottom: each step of a composition numbered, the argument
names a step receives on the arrow into it, branches of ``+`` and ``/`` side by side as a tree,
and the stage markers as rules that say where preprocessing ends and postprocessing starts.
"""

from __future__ import annotations

import html
import inspect

from padlc.language.atomic import ClassTransform, FunctionTransform
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Pipeline, Rollout
from padlc.language.markers import Batchify, Unbatchify
from padlc.language.modes import IfInMode, Try

__all__ = ["render_ascii", "render_html"]


def _arguments(t: Transform) -> str:
    """The parameter names a leaf receives, as shown on the arrow into it."""
    target = None
    if isinstance(t, FunctionTransform):
        target = t.function
    elif isinstance(t, ClassTransform):
        target = type(t).forward if hasattr(type(t), "forward") else type(t).__call__  # type: ignore[attr-defined]
    if target is None:
        return ""
    try:
        names = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.name != "self" and p.kind is not p.VAR_KEYWORD
        ]
    except (TypeError, ValueError):
        return ""
    if not names:
        return ""
    return names[0] if len(names) == 1 else f"({', '.join(names)})"


def _label(t: Transform) -> str:
    if isinstance(t, Batchify):
        return "batch ━━━━━━━━ preprocess ▲ │ ▼ forward"
    if isinstance(t, Unbatchify):
        return "unbatch ━━━━━━ forward ▲ │ ▼ postprocess"
    return t._pd_short_repr()


def _render(t: Transform) -> list[str]:
    """Lines drawing ``t``; the first line is its head, the others are indented under it."""
    if isinstance(t, Compose):
        lines: list[str] = []
        header = [f"{t._pd_name}:"] if t._pd_name else []
        for i, child in enumerate(t._pd_transforms):
            args = _arguments(child)
            lines.append(f"   ▼ {args}".rstrip() if i or args else "   ▼")
            body = _render(child)
            prefix = f"{i}: "
            lines.append(prefix + body[0])
            lines.extend(" " * len(prefix) + line for line in body[1:])
        return header + lines if header else lines[1:] if lines[0] == "   ▼" else lines
    if isinstance(t, Rollout | Parallel):
        kind = (
            "rollout (same input to each)"
            if isinstance(t, Rollout)
            else "parallel (one input each)"
        )
        head = f"{t._pd_name + ': ' if t._pd_name else ''}{t.operator} {kind} → ({', '.join(t.pd_keys)})"
        lines = [head]
        children = t._pd_transforms
        for i, child in enumerate(children):
            last = i == len(children) - 1
            body = _render(child)
            lines.append(("└─ " if last else "├─ ") + body[0])
            lines.extend(("   " if last else "│  ") + line for line in body[1:])
        return lines
    if isinstance(t, Map):
        body = _render(t._pd_transform)
        return [f"~ map over items: {body[0]}"] + ["  " + line for line in body[1:]]
    if isinstance(t, IfInMode):
        if_body = _render(t.if_)
        else_body = _render(t.else_)
        lines = [f"if mode is {t.target_mode}:"]
        lines += ["├─ " + if_body[0]] + ["│  " + line for line in if_body[1:]]
        lines += ["└─ else: " + else_body[0]] + ["   " + line for line in else_body[1:]]
        return lines
    if isinstance(t, Try):
        return [repr(t)]
    if isinstance(t, Pipeline):  # pragma: no cover - every pipeline kind is handled above
        return [repr(t)]
    return [_label(t)]


def render_ascii(t: Transform) -> str:
    """The multi-line picture of ``t`` (what ``print(t)`` shows)."""
    title = repr(t)
    body = _render(t)
    return "\n".join([title, "", *body])


def render_html(t: Transform) -> str:
    """The same picture for Jupyter's rich display."""
    title = html.escape(repr(t))
    body = html.escape("\n".join(_render(t)))
    return (
        f'<div class="padlc-pipeline"><code><b>{title}</b></code>'
        f'<pre style="line-height:1.2">{body}</pre></div>'
    )
