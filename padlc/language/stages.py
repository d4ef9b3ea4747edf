"""Splitting a pipeline into preprocess / forward / postprocess at its ``batch``/``unbatch`` markers.

The split walks the pipeline once, tracking the stage of every path (a tuple of states after a
rollout or parallel, so branches may batch at different points), and places each leaf into the
stage its path is in. The rules are PADL's: a rollout stays a rollout in the first stage where one
of its branches does something, and becomes a parallel in the later stages; a map is a map in every
stage; a mode switch is split branch by branch; a ``Try`` must lie within one stage.

Invalid structures are rejected naming the transform: two ``batch`` (or two ``unbatch``) on one path,
and a path that batches beside one that does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from padlc.errors import StageError
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Pipeline, Rollout
from padlc.language.markers import Batchify, Identity, Unbatchify, identity
from padlc.language.modes import IfInMode, Try

__all__ = ["Stages", "split", "without_markers"]

PRE, FORWARD, POST = 0, 1, 2
_STAGE_NAMES = ("preprocess", "forward", "postprocess")


@dataclass(frozen=True, slots=True)
class Path:
    """Where one path of values is: its stage, and whether it passed a ``batch``."""

    stage: int
    batched: bool


State = Union[Path, tuple["State", ...]]  # noqa: UP007 - a recursive alias needs Union
Components = tuple[Transform, Transform, Transform]


@dataclass(frozen=True, slots=True)
class Stages:
    preprocess: Transform
    forward: Transform
    postprocess: Transform
    has_batch: bool
    has_unbatch: bool


def _paths(state: State) -> list[Path]:
    if isinstance(state, Path):
        return [state]
    return [p for s in state for p in _paths(s)]


def _collapse(state: State, where: Transform) -> Path:
    """The single path a leaf consumes; branches reaching it must be in the same stage."""
    paths = _paths(state)
    first = paths[0]
    for other in paths[1:]:
        if other.stage != first.stage:
            raise StageError(
                f"`{where!r}` receives values from branches in different stages "
                f"({_STAGE_NAMES[first.stage]} and {_STAGE_NAMES[other.stage]}). Put the same "
                "stage markers (`batch`/`unbatch`) on every branch before combining them."
            )
        if other.batched != first.batched:
            raise StageError(
                f"`{where!r}` combines a branch that passed `batch` with one that did not. Every "
                "path through a pipeline must pass `batch` (or none may)."
            )
    return first


def _is_identity(t: Transform) -> bool:
    return isinstance(t, Identity)


def _compose(parts: list[Transform]) -> Transform:
    kept = [p for p in parts if not _is_identity(p)]
    if not kept:
        return identity
    if len(kept) == 1:
        return kept[0]
    return Compose(kept)


def _mark_stage(state: State, where: Transform, marker: Transform) -> State:
    if isinstance(state, Path):
        if isinstance(marker, Batchify):
            if state.batched or state.stage != PRE:
                raise StageError(
                    "Two `batch` markers on one path: a second `batch` batches values that "
                    "were already batched. Remove one of them."
                )
            return Path(FORWARD, True)
        if state.stage == POST:
            raise StageError(
                f"Two `unbatch` markers on one path at `{where!r}`: the values were already "
                "unbatched. Remove one of them."
            )
        return Path(POST, state.batched)
    return tuple(_mark_stage(s, where, marker) for s in state)


def _split(t: Transform, state: State) -> tuple[State, Components]:
    out, components = _split_parts(t, state)
    name = t.__dict__.get("_pd_name")
    if name is not None and isinstance(t, Pipeline | Map | IfInMode):
        # `(a >> b) - 'name'`: its part in each stage keeps the name, as in PADL (its own parts
        # only: a leaf it reuses as is keeps its own name).
        originals = {id(x) for x in t.pd_iter_transforms()}
        for part in components:
            if not _is_identity(part) and id(part) not in originals:
                part.__dict__["_pd_name"] = name
    return out, components


def _split_parts(t: Transform, state: State) -> tuple[State, Components]:
    if isinstance(t, Identity):
        return state, (identity, identity, identity)
    if isinstance(t, Batchify | Unbatchify):
        new = _mark_stage(state, t, t)
        return new, (
            (t, identity, identity) if isinstance(t, Batchify) else (identity, identity, t)
        )
    if isinstance(t, Compose):
        parts: list[list[Transform]] = [[], [], []]
        for child in t._pd_transforms:
            state, components = _split(child, state)
            for k in range(3):
                parts[k].append(components[k])
        return state, (_compose(parts[0]), _compose(parts[1]), _compose(parts[2]))
    if isinstance(t, Rollout | Parallel):
        return _split_branches(t, state)
    if isinstance(t, Map):
        path = _collapse(state, t)
        out, components = _split(t._pd_transform, path)
        return out, tuple(  # type: ignore[return-value]
            identity if _is_identity(c) else Map(c) for c in components
        )
    if isinstance(t, IfInMode):
        out_if, if_parts = _split(t.if_, state)
        out_else, else_parts = _split(t.else_, state)
        if _paths(out_if) != _paths(out_else):
            raise StageError(
                f"The branches of `{t!r}` end in different stages; both must contain the same "
                "`batch`/`unbatch` markers."
            )
        return out_if, tuple(  # type: ignore[return-value]
            identity if _is_identity(a) and _is_identity(b) else t._pd_replace(a, b)
            for a, b in zip(if_parts, else_parts)
        )
    if isinstance(t, Try):
        path = _collapse(state, t)
        if any(isinstance(x, Batchify | Unbatchify) for x in t.pd_iter_transforms()):
            raise StageError(
                f"`{t!r}` spans several stages: a Try must lie within one stage, so move "
                "`batch`/`unbatch` out of it."
            )
        return path, _placed(t, path.stage)
    # a leaf
    path = _collapse(state, t)
    return path, _placed(t, path.stage)


def _placed(t: Transform, stage: int) -> Components:
    """``t`` in one stage, identity in the others."""
    parts: list[Transform] = [identity, identity, identity]
    parts[stage] = t
    return (parts[0], parts[1], parts[2])


def _split_branches(t: Pipeline, state: State) -> tuple[State, Components]:
    children = t._pd_transforms
    if isinstance(t, Parallel):
        if isinstance(state, tuple):
            if len(state) != len(children):
                raise StageError(
                    f"`{t!r}` has {len(children)} branches but receives {len(state)} values."
                )
            inputs: list[State] = list(state)
        else:
            inputs = [state] * len(children)
    else:
        inputs = [state] * len(children)
    outs: list[State] = []
    parts: list[Components] = []
    for child, child_state in zip(children, inputs):
        out, components = _split(child, child_state)
        outs.append(out)
        parts.append(components)

    def build(kind: type[Pipeline], k: int) -> Transform:
        column = [p[k] for p in parts]
        if kind is Parallel and all(_is_identity(c) for c in column):
            return identity
        # the outputs keep the whole pipeline's field names in every stage
        return kind(column, grouped=True)._pd_keep_fields(t)

    if isinstance(t, Rollout):
        active = [k for k in range(3) if any(not _is_identity(p[k]) for p in parts)]
        first = active[0] if active else min(p.stage for p in _paths(state))
        result: list[Transform] = []
        for k in range(3):
            if k < first:
                result.append(identity)
            elif k == first:
                result.append(build(Rollout, k))
            else:
                result.append(build(Parallel, k))
        return tuple(outs), tuple(result)  # type: ignore[return-value]
    return tuple(outs), (build(Parallel, 0), build(Parallel, 1), build(Parallel, 2))


def split(t: Transform) -> Stages:
    """The three stages of ``t``; a pipeline without ``batch`` is all forward."""
    try:
        # The whole pipeline's name stays on it, not on its stages (which print what they hold).
        out, (pre, forward, post) = _split_parts(t, Path(PRE, False))
    except StageError as exc:
        raise StageError(f"{exc} In the pipeline `{t!r}`.") from None
    paths = _paths(out)
    batched = {p.batched for p in paths}
    if len(batched) > 1:
        raise StageError(
            f"In `{t!r}` some branches pass `batch` and others do not. Every path through a "
            "pipeline must pass `batch` (or none may): add `batch` to the other branches."
        )
    has_unbatch = any(isinstance(x, Unbatchify) for x in t.pd_iter_transforms())
    if not batched.pop():
        # Without `batch` there is no preprocessing: what precedes `unbatch` runs as the forward.
        return Stages(identity, _compose([pre, forward]), post, False, has_unbatch)
    return Stages(pre, forward, post, True, has_unbatch)


def without_markers(t: Transform) -> Transform:
    """``t`` with ``batch``/``unbatch`` removed, for the executor's per-item stages.

    In ``eval``/``train`` mode both markers pass values through (the executor batches, splits and
    moves batches itself), so dropping them saves a call per item and often a whole composition.
    """
    if isinstance(t, Batchify | Unbatchify):
        return identity
    if isinstance(t, Compose):
        return _compose([without_markers(c) for c in t._pd_transforms])
    if isinstance(t, Rollout | Parallel):
        children = [without_markers(c) for c in t._pd_transforms]
        if isinstance(t, Parallel) and all(_is_identity(c) for c in children):
            return identity
        return type(t)(children, grouped=True)._pd_keep_fields(t)
    if isinstance(t, Map):
        inner = without_markers(t._pd_transform)
        return identity if _is_identity(inner) else Map(inner)
    if isinstance(t, IfInMode):
        if_, else_ = without_markers(t.if_), without_markers(t.else_)
        return identity if _is_identity(if_) and _is_identity(else_) else t._pd_replace(if_, else_)
    return t
