"""The forward stage as ONE ``torch.fx.GraphModule``, built from the IR.

Layers become ``call_module`` nodes, functions ``call_function``, ``same`` operations
``call_method``/``getattr``/``getitem``, parallel branches ``getitem``, rollouts tuples. The graph
takes the collated batch flattened into N tensors and returns a flat tuple of tensors; the nesting
of both is recorded as tree specs (:mod:`padl_runtime.treespec`) so the runtime rebuilds
namedtuples and dicts around the compiled program.
"""

from __future__ import annotations

import linecache
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from padl_runtime.moved import with_tensors_on
from padl_runtime.treespec import flattener, spec_of
from padlc.errors import LoweringError
from padlc.ir import nodes as ir
from padlc.ir.printer import format_location
from padlc.ir.trace import iter_calls
from padlc.language.operations import to_source, unknown_operation
from padlc.naming import Namespace

__all__ = ["LoweredForward", "blame", "build_graph", "lowering_error", "vmapped"]

WHAT_TO_DO = (
    "What to do: keep the forward stage (between `batch` and `unbatch`) to tensor operations on "
    "the whole batch; move Python control flow on tensor values (`if x.sum() > 0`), "
    "`.item()`/`.tolist()`/numpy calls and string handling to the postprocess (after `unbatch`) "
    "or the preprocess (before `batch`), or build with --backend eager (which runs it as Python)."
)


@dataclass(frozen=True, slots=True)
class _Struct:
    """A value built by the graph's plumbing: its items are known at build time."""

    kind: str  # "tuple" | "list" | "namedtuple" | "dict"
    items: tuple[Any, ...]
    keys: tuple[str, ...] = ()

    def materialise(self) -> Any:
        items = tuple(i.materialise() if isinstance(i, _Struct) else i for i in self.items)
        if self.kind == "dict":
            return dict(zip(self.keys, items))
        return list(items) if self.kind == "list" else items


@dataclass
class LoweredForward:
    """The forward stage ready for a backend: the graph, its example inputs and eager outputs."""

    module: fx.GraphModule
    input_spec: dict[str, Any]
    output_spec: dict[str, Any]
    example: tuple[torch.Tensor, ...]
    expected: tuple[torch.Tensor, ...]
    device: str
    max_batch: int | None
    label: str
    calls: list[ir.Call] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.module.code


class _Builder:
    def __init__(self, stage_label: str) -> None:
        self.graph = fx.Graph()
        self.root = torch.nn.Module()
        self.stage_label = stage_label
        # submodule names must not hide what every module has (forward, training, eval...)
        self.names = Namespace(dir(self.root))

    # -- names ---------------------------------------------------------------------------------
    def layer_name(self, call: ir.Call) -> str:
        name = self.names.name_of(call.target)
        if name is None:
            name = self.names.create(call.label.split("(")[0].lower(), call.target, default="layer")
            self.root.add_module(name, call.target)
        return name

    # -- inputs --------------------------------------------------------------------------------
    def inputs(self, spec: dict[str, Any], path: str) -> Any:
        kind = spec["t"]
        if kind == "tensor":
            name = re.sub(r"\W+", "_", path).strip("_") or "x"
            return self.graph.placeholder(name)
        if kind == "none":
            return None
        if kind == "dict":
            return _Struct(
                "dict",
                tuple(self.inputs(s, f"{path}_{k}") for k, s in zip(spec["keys"], spec["items"])),
                tuple(spec["keys"]),
            )
        keys = tuple(spec.get("fields", ()))
        return _Struct(
            kind, tuple(self.inputs(s, f"{path}_{i}") for i, s in enumerate(spec["items"])), keys
        )

    # -- nodes ---------------------------------------------------------------------------------
    def fail(self, node: ir.Node, what: str) -> LoweringError:
        where = format_location(node.location)
        return LoweringError(
            f"The forward stage `{self.stage_label}` cannot be compiled: `{node.label}`"
            + (f" ({where})" if where else "")
            + f" {what}.\n{WHAT_TO_DO}"
        )

    def items(self, value: Any, n: int, node: ir.Node) -> tuple[Any, ...]:
        if isinstance(value, _Struct):
            if len(value.items) != n:
                raise self.fail(node, f"expects {n} values but receives {len(value.items)}")
            return value.items
        if isinstance(value, fx.Node):
            return tuple(self.graph.call_function(operator.getitem, (value, i)) for i in range(n))
        raise self.fail(node, f"expects {n} values but receives {type(value).__name__}")

    def arg(self, value: Any) -> Any:
        return value.materialise() if isinstance(value, _Struct) else value

    def apply(self, node: ir.Node, value: Any) -> Any:
        if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
            return value
        if isinstance(node, ir.Seq):
            for step in node.steps:
                value = self.apply(step, value)
            return value
        if isinstance(node, ir.Call):
            return self.call(node, value)
        if isinstance(node, ir.Attr):
            return self.attr(node, value)
        if isinstance(node, ir.Rollout):
            outs = tuple(self.apply(b, value) for b in node.branches)
            return _Struct("namedtuple", outs, node.fields)
        if isinstance(node, ir.Parallel):
            parts = self.items(value, len(node.branches), node)
            outs = tuple(self.apply(b, v) for b, v in zip(node.branches, parts))
            return _Struct("namedtuple", outs, node.fields)
        if isinstance(node, ir.Map):
            if not isinstance(value, _Struct):
                raise self.fail(
                    node, "maps (`~`) over a value whose length is only known at run time"
                )
            return _Struct("tuple", tuple(self.apply(node.body, v) for v in value.items))
        if isinstance(node, ir.Try):
            raise self.fail(node, "is a Try: exception handling is Python control flow")
        if isinstance(node, ir.Switch):  # pragma: no cover - resolved before lowering
            raise self.fail(node, "depends on the apply mode")
        raise self.fail(node, f"is a {type(node).__name__}, which the forward cannot hold")

    def call(self, node: ir.Call, value: Any) -> Any:
        if node.unpack and isinstance(value, _Struct) and value.kind != "dict":
            args = tuple(self.arg(v) for v in value.items)
        elif node.unpack and isinstance(value, fx.Node) and node.arity:
            args = self.items(value, node.arity, node)
        else:
            args = (self.arg(value),)
        if node.kind == "layer":
            return self.graph.call_module(self.layer_name(node), args)
        if node.vmap:
            return self.graph.call_function(vmapped(node.target), args)
        return self.graph.call_function(node.target, args)

    def attr(self, node: ir.Attr, value: Any) -> Any:
        operations = node.operations
        i = 0
        while i < len(operations):
            operation = operations[i]
            following = operations[i + 1] if i + 1 < len(operations) else None
            if isinstance(value, _Struct):
                value = self.static(node, value, operation)
            elif isinstance(operation, ir.GetAttr) and isinstance(following, ir.CallValue):
                args, kwargs = following.args, following.kwargs
                value = self.graph.call_method(operation.name, (value, *args), dict(kwargs))
                i += 1
            else:
                match operation:
                    case ir.GetAttr(name):
                        value = self.graph.call_function(getattr, (value, name))
                    case ir.GetItem(key):
                        value = self.graph.call_function(operator.getitem, (value, key))
                    case ir.CallValue(args, kwargs):
                        value = self.graph.call_function(_call, (value, *args), dict(kwargs))
                    case _:
                        unknown_operation(operation)
            i += 1
        return value

    def static(self, node: ir.Attr, value: _Struct, operation: ir.Operation) -> Any:
        """``operation`` applied to plumbing known at build time (a rollout's namedtuple)."""
        match operation:
            case ir.GetItem(key):
                if value.kind == "dict" and key in value.keys:
                    return value.items[value.keys.index(key)]
                if isinstance(key, int) and value.kind != "dict":
                    return value.items[key]
                if isinstance(key, slice) and value.kind != "dict":
                    return _Struct("tuple", value.items[key])
            case ir.GetAttr(name):
                if value.kind == "namedtuple" and name in value.keys:
                    return value.items[value.keys.index(name)]
            case ir.CallValue():
                pass
            case _:
                unknown_operation(operation)
        text = to_source((operation,), "")
        raise self.fail(node, f"applies `{text}` to a tuple of the forward's plumbing")


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def vmapped(function: Any) -> Any:
    """``torch.vmap(function)``, named ``vmap.<name>`` so the graph's code reads
    ``normalise = vmap_normalise(x)`` (a preprocess step moved by the stage-boundary move).
    The tensors the function reads from its module or closure follow the batch's device."""

    def run(batch: Any) -> Any:
        # Always vmap (not padl_runtime.moved.per_item): under torch.export the batch size is
        # symbolic, and testing it for 1 would specialise the exported graph.
        return torch.vmap(with_tensors_on(function, batch.device))(batch)

    name = re.sub(r"\W+", "_", getattr(function, "__name__", "function")).strip("_") or "function"
    run.__name__ = run.__qualname__ = "lambda_" if name == "lambda" else name
    run.__module__ = "vmap"
    run.__wrapped__ = function  # type: ignore[attr-defined]
    return run


def _flatten_symbolic(
    builder: _Builder, value: Any, actual: Any, node: ir.Node
) -> tuple[list[fx.Node], dict[str, Any]]:
    """The graph's flat outputs for ``value`` (whose run-time value is ``actual``) and its spec."""
    if isinstance(value, _Struct):
        flat: list[fx.Node] = []
        specs = []
        actual_items = list(actual.values()) if isinstance(actual, dict) else list(actual)
        for item, got in zip(value.items, actual_items):
            nodes, spec = _flatten_symbolic(builder, item, got, node)
            flat += nodes
            specs.append(spec)
        if value.kind == "namedtuple":
            return flat, {"t": "namedtuple", "fields": list(value.keys), "items": specs}
        if value.kind == "dict":
            return flat, {"t": "dict", "keys": list(value.keys), "items": specs}
        return flat, {"t": value.kind, "items": specs}
    try:
        spec = spec_of(actual, "output")
    except TypeError as exc:
        raise builder.fail(
            node, f"returns a non-tensor value from the forward stage ({exc})"
        ) from None
    return _getitems(builder.graph, value, spec), spec


def _getitems(graph: fx.Graph, value: fx.Node, spec: dict[str, Any]) -> list[fx.Node]:
    kind = spec["t"]
    if kind == "tensor":
        return [value]
    if kind == "none":
        return []
    keys = spec.get("keys") or range(len(spec["items"]))
    out: list[fx.Node] = []
    for key, sub in zip(keys, spec["items"]):
        out += _getitems(graph, graph.call_function(operator.getitem, (value, key)), sub)
    return out


def build_graph(
    forward: ir.Node,
    example_batch: Any,
    *,
    label: str,
    device: str = "cpu",
    max_batch: int | None = None,
) -> LoweredForward:
    """The forward stage ``forward`` (IR, modes resolved) as a GraphModule, checked on ``example_batch``.

    ``example_batch`` is the collated preprocessing output of at least two examples. Raises
    :class:`~padlc.errors.LoweringError` naming the transform that cannot be part of the graph.
    """
    builder = _Builder(label)
    try:
        input_spec = spec_of(example_batch, "batch")
    except TypeError as exc:
        raise LoweringError(
            f"The forward stage `{label}` cannot be compiled: its input holds a non-tensor value "
            f"({exc}). Everything reaching `batch` must become tensors before it: convert strings "
            "to ids, lists to tensors, in the preprocess.\n" + WHAT_TO_DO
        ) from None
    flat_example = flattener(input_spec)(example_batch)
    flat_example = tuple(t.to(device) for t in flat_example)
    value = builder.apply(forward, builder.inputs(input_spec, "x"))
    # Run the plumbing once with a provisional output to learn the run-time structure of values the
    # graph returns as one node (a layer returning a tuple), then flatten them with getitem nodes.
    provisional = builder.graph.output(builder.arg(value))
    probe = fx.GraphModule(builder.root, builder.graph, class_name="Forward")
    with torch.no_grad():
        try:
            actual = probe(*flat_example)
        except Exception as exc:
            culprit = blame(exc, list(iter_calls(forward)))
            raise lowering_error(label, culprit, exc, "fails on the example batch") from exc
    builder.graph.erase_node(provisional)
    flat, output_spec = _flatten_symbolic(builder, value, actual, forward)
    builder.graph.output(tuple(flat))
    builder.graph.lint()
    module = fx.GraphModule(builder.root, builder.graph, class_name="Forward").eval()
    with torch.no_grad():
        expected = tuple(module(*flat_example))
    return LoweredForward(
        module=module,
        input_spec=input_spec,
        output_spec=output_spec,
        example=flat_example,
        expected=expected,
        device=device,
        max_batch=max_batch,
        label=label,
        calls=list(iter_calls(forward)),
    )


# -- naming the culprit of a failure ----------------------------------------------------------------
def _code_of(call: ir.Call) -> Any:
    target = call.target
    if call.kind == "function":
        return getattr(target, "__code__", None)
    method = getattr(type(target), "forward" if call.kind == "layer" else "__call__", None)
    return getattr(method, "__code__", None)


def _lines(code: Any) -> set[int]:
    lines = {line for _, _, line in code.co_lines() if line is not None}
    for const in code.co_consts:
        if hasattr(const, "co_lines"):
            lines |= _lines(const)
    return lines


def _places(exc: BaseException) -> list[tuple[str, int]]:
    """The (file, line) of every frame of ``exc``'s traceback and of the tracebacks it was raised
    from, and those its messages quote, outermost first."""
    places: list[tuple[str, int]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            places.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
            tb = tb.tb_next
        text = str(current)
        places += [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', text)]
        current = current.__cause__ or current.__context__
    return places


def blame(exc: BaseException, calls: Sequence[ir.Call]) -> ir.Call | None:
    """The user transform whose code appears innermost in ``exc``'s traceback or message."""
    found = _blame_line(exc, calls)
    return None if found is None else found[0]


def _blame_line(exc: BaseException, calls: Sequence[ir.Call]) -> tuple[ir.Call, int] | None:
    """:func:`blame`, with the line of the transform's code the failure happened at."""
    codes = [(call, _code_of(call)) for call in calls]
    codes = [(call, code) for call, code in codes if code is not None]
    if not codes:
        return None
    found: tuple[ir.Call, int] | None = None
    for filename, line in _places(exc):
        for call, code in codes:
            if code.co_filename == filename and line in _lines(code):
                found = (call, line)
    return found


def _scripts(call: ir.Call) -> bool:
    """Whether ``torch.jit.script`` compiles the transform (it keeps Python control flow)."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch 2.13 reports torch.jit as deprecated
            warnings.simplefilter("ignore")
            torch.jit.script(call.target)
    except Exception:
        return False
    return True


def lowering_error(
    label: str, culprit: ir.Call | None, exc: BaseException, what: str, backend: str = ""
) -> LoweringError:
    """The error naming the transform that cannot be compiled, the line of its code that fails,
    and what to do: build with ``torchscript`` when TorchScript compiles the transform (its Python
    control flow included), else move the code out of the forward."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    how = f" with backend {backend!r}" if backend else ""
    advice = WHAT_TO_DO
    if culprit is not None:
        where = format_location(culprit.location)
        code = _code_of(culprit)
        if code is not None:
            where = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}" + (
                f", used at {where}" if where else ""
            )
        subject = f"transform `{culprit.label}` ({where})"
        located = _blame_line(exc, [culprit])
        if located is not None and code is not None:
            text = linecache.getline(code.co_filename, located[1]).strip()
            name = code.co_filename.rsplit("/", 1)[-1]
            subject += f", at {name}:{located[1]}" + (f" `{text}`" if text else "")
        if backend != "torchscript" and _scripts(culprit):
            advice = (
                f"What to do: build with --backend torchscript (backend='torchscript'): "
                f"TorchScript compiles `{culprit.label}`, Python control flow included. Or keep "
                "the forward stage to tensor operations on the whole batch (control flow on "
                "tensor values, `.item()`, numpy and strings before `batch` or after `unbatch`)."
            )
    else:
        subject = f"the forward stage `{label}`"
    return LoweringError(
        f"Cannot compile the forward stage{how}: {subject} {what}: "
        f"{type(exc).__name__}: {first}\n{advice}"
    )
