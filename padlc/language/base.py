"""The :class:`Transform` base class: operators, names, stages, and the three apply methods.

Every object of the pipeline language is a ``Transform``. Leaves wrap user code
(:mod:`padlc.language.atomic`); composites combine transforms (:mod:`padlc.language.combinators`).
Internally every transform is applied through ``_pd_call(value)`` with ONE argument (a tuple when
several values flow); user-facing ``__call__`` unpacks positional arguments into that value.
"""

from __future__ import annotations

import copy
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from padl_runtime.keywords import suggest_keywords
from padlc.errors import ModeError, WrongDeviceError
from padlc.language import context as _context

if TYPE_CHECKING:
    from padlc.language.apply import Outputs
    from padlc.language.combinators import Compose, Map, Parallel, Rollout
    from padlc.language.stages import Stages

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CallableTransform",
    "Operand",
    "Transform",
    "as_transform",
    "checked_name",
]

#: ``eval_apply``/``train_apply`` batch size when none is given. PADL used the DataLoader's default
#: of 1, which made every pipeline run item by item on the device; 64 keeps small models busy while
#: bounding memory for large inputs. Pass ``batch_size=`` to tune it.
DEFAULT_BATCH_SIZE = 64

#: What an operator takes besides a transform: any callable, wrapped with ``transform`` (a layer,
#: a function, ``str.lower``).
Operand = Callable[..., Any]


_T = TypeVar("_T", bound="Transform")


def _combined(t: _T) -> _T:
    """``t``, made by an operator, with the namespace of the code that combined it: a pipeline
    bound to a module-level variable is named after it, as a transform is (one frame read)."""
    t.__dict__["_pd_globals"] = sys._getframe(2).f_globals
    return t


def checked_name(name: str) -> str:
    """``name`` when it can name a transform (it becomes an output field name), else a ValueError."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"Transform names must be Python identifiers (they become output field names); "
            f"got {name!r}. Try {'_'.join(str(name).split()) or 'name'!r}."
        )
    return name


def as_transform(value: Any, *, operator: str, depth: int = 1) -> Transform:
    """Wrap a plain callable used as an operand, or reject a non-callable at once.

    A wrapped operand records the line ``depth`` frames above the caller (the operator method's
    caller: the user's line ``prepare >> model``) as where it was created."""
    if isinstance(value, Transform):
        return value
    if callable(value):
        from padlc.language.atomic import wrap

        return wrap(value, depth + 1)  # type: ignore[no-any-return]
    raise TypeError(
        f"Cannot use {value!r} (a {type(value).__name__}) with `{operator}` in a pipeline: it is "
        "not callable. Operands must be transforms or callables, e.g. `t >> transform(f)`."
    )


#: Instance attributes rebuilt on demand, or recorded for the capture only (where
#: ``transform(instance)`` ran), left out when a transform is pickled.
_TRANSIENT = (
    "_pd_calls",
    "_pd_stages_cache",
    "_pd_layers_cache",
    "_pd_locals",
    "_pd_instruction",
    "_pd_item_ranks",
    "_pd_infer_context",
)
#: The layer list as computed, what it was computed from (namespace, name, value: it is computed
#: again when one of them changes) and the layers' mode gates.
_LayerCache = tuple[list[torch.nn.Module], list[tuple[Any, str, Any]], list[Any]]


class Transform:
    """Base of every pipeline object.

    Attributes are class-level defaults (``None``) and become instance attributes only when set, so
    creating a transform stays cheap and ``nn.Module`` subclasses can mix this class in.
    """

    _pd_name: str | None = None
    _pd_location: tuple[str, int] | None = None
    _pd_globals: dict[str, Any] | None = None
    _pd_device: str = "cpu"
    _pd_layers_cache: _LayerCache | None = None
    # Annotations naming types imported only for type checking stay out of __annotations__:
    # libraries call typing.get_type_hints on classes that mix Transform in (transformers does on
    # every PreTrainedModel subclass, so `transform(BertModel)` would raise NameError).
    if TYPE_CHECKING:
        _pd_stages_cache: Stages | None
    _pd_stages_cache = None

    if TYPE_CHECKING:
        # Every transform is callable: a leaf calls the user's function or object (a wrapped
        # class keeps its own __call__, so there is none here at run time), a composite applies
        # its steps (CallableTransform).
        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    # -- copying and pickling (spawned worker processes receive the pipeline's stages) ----------
    def __copy__(self) -> Any:
        """A shallow copy with all of this transform's attributes (pickling leaves some out, and
        pickles a module-level ``@transform def`` by reference: it is not how to copy)."""
        cls = type(self)
        try:
            copied = object.__new__(cls)
        except TypeError:  # a class over a builtin type (dict, tuple) allocates through its own
            copied = cls.__new__(cls)
        copied.__dict__.update(self.__dict__)
        return copied

    def __getstate__(self) -> dict[str, Any]:
        parent = getattr(super(), "__getstate__", None)  # nn.Module's for layers
        state = parent() if parent is not None else None
        state = dict(state if isinstance(state, dict) else self.__dict__)
        for cache in _TRANSIENT:
            state.pop(cache, None)
        if state.get("_pd_globals") is not None:
            state["_pd_globals"] = None  # the creation site's module namespace: names, not data
        return state

    # -- the internal call ---------------------------------------------------------------------
    def _pd_call(self, value: Any) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _pd_callable(self) -> Callable[[Any], Any]:
        """The cheapest callable equivalent to ``_pd_call`` (hot loops call it once per item)."""
        return self._pd_call

    def _pd_needs_mode(self) -> bool:
        """Whether applying this transform needs an apply mode (markers, mode switches)."""
        return False

    def _pd_children(self) -> tuple[Transform, ...]:
        return ()

    # -- operators -----------------------------------------------------------------------------
    def __rshift__(self, other: Transform | Operand) -> Compose:
        from padlc.language.combinators import Compose

        return _combined(Compose((self, as_transform(other, operator=">>"))))

    def __rrshift__(self, other: Operand) -> Compose:
        from padlc.language.combinators import Compose

        return _combined(Compose((as_transform(other, operator=">>"), self)))

    def __add__(self, other: Transform | Operand) -> Rollout:
        from padlc.language.combinators import Rollout

        return _combined(Rollout((self, as_transform(other, operator="+"))))

    def __radd__(self, other: Operand) -> Rollout:
        from padlc.language.combinators import Rollout

        return _combined(Rollout((as_transform(other, operator="+"), self)))

    def __truediv__(self, other: Transform | Operand) -> Parallel:
        from padlc.language.combinators import Parallel

        return _combined(Parallel((self, as_transform(other, operator="/"))))

    def __rtruediv__(self, other: Operand) -> Parallel:
        from padlc.language.combinators import Parallel

        return _combined(Parallel((as_transform(other, operator="/"), self)))

    def __invert__(self) -> Map:
        from padlc.language.combinators import Map

        return _combined(Map(self))

    def __sub__(self, name: str) -> Transform:
        if not isinstance(name, str):
            return NotImplemented
        return self.pd_named(name)

    def pd_named(self, name: str) -> Transform:
        """A copy of this transform called ``name`` (``t - 'name'``); the original keeps its name."""
        named = copy.copy(self)
        named.__dict__.pop("_pd_stages_cache", None)
        named.__dict__["_pd_name"] = checked_name(name)
        return named

    # -- names ---------------------------------------------------------------------------------
    @property
    def pd_name(self) -> str | None:
        """The explicit name, else the variable the transform is bound to, else the function name."""
        if self._pd_name is not None:
            return self._pd_name
        return self.pd_varname() or self._pd_default_name()

    def pd_varname(self) -> str | None:
        """The global variable this transform is bound to where it was created, if any."""
        scope = self._pd_globals
        if scope is None:
            return None
        for key, value in list(scope.items()):
            if value is self and not key.startswith("_"):
                return key
        return None

    def _pd_default_name(self) -> str | None:
        return None

    # -- stages --------------------------------------------------------------------------------
    def _pd_stages(self) -> Stages:
        cached = self.__dict__.get("_pd_stages_cache")
        if cached is None:
            from padlc.language.stages import split

            cached = split(self)
            self.__dict__["_pd_stages_cache"] = cached
        return cached

    def _pd_with_device(self, stage: Transform) -> Transform:
        if stage._pd_device != self._pd_device:
            stage.__dict__["_pd_device"] = self._pd_device
        return stage

    @property
    def pd_preprocess(self) -> Transform:
        """The part before ``batch`` (``identity`` when there is none), ending with the ``batch``."""
        return self._pd_with_device(self._pd_stages().preprocess)

    @property
    def pd_forward(self) -> Transform:
        """The part between ``batch`` and ``unbatch``: what runs on batches, on the device."""
        return self._pd_with_device(self._pd_stages().forward)

    @property
    def pd_postprocess(self) -> Transform:
        """The part from ``unbatch`` on (``identity`` when there is none)."""
        return self._pd_with_device(self._pd_stages().postprocess)

    @property
    def pd_stages(self) -> tuple[Transform, Transform, Transform]:
        return (self.pd_preprocess, self.pd_forward, self.pd_postprocess)

    # -- torch integration ---------------------------------------------------------------------
    def pd_iter_transforms(self) -> Iterator[Transform]:
        """Every transform in this one, depth first, each once."""
        seen: set[int] = set()
        stack: list[Transform] = [self]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            yield current
            stack.extend(reversed(current._pd_children()))

    def _pd_own_layers(self) -> Iterable[torch.nn.Module]:
        return ()

    def _pd_layer_sources(self) -> Iterable[tuple[Any, str, Any]]:
        """Where :meth:`_pd_own_layers` found its layers that can be re-bound: ``(namespace,
        name, value)`` (a function's global, an instance attribute)."""
        return ()

    @property
    def pd_layers(self) -> list[torch.nn.Module]:
        """All ``torch.nn.Module``s of the pipeline, including layers used inside functions."""
        return list(self._pd_layer_list())

    def _pd_layer_list(self) -> list[torch.nn.Module]:
        return self._pd_layer_cache()[0]

    def _pd_layer_cache(self) -> _LayerCache:
        """The layers and their mode gates, computed again when a global or an attribute they
        came from was re-bound (a notebook running ``encoder = nn.Dropout(0.5)`` again)."""
        cached = self.__dict__.get("_pd_layers_cache")
        if cached is not None:
            for namespace, name, value in cached[1]:
                if namespace.get(name, None) is not value:
                    break
            else:
                return cached  # type: ignore[no-any-return]
        from padlc.language.layer_modes import gates_of

        seen: set[int] = set()
        layers: list[torch.nn.Module] = []
        sources: list[tuple[Any, str, Any]] = []
        for t in self.pd_iter_transforms():
            sources.extend(t._pd_layer_sources())
            for layer in t._pd_own_layers():
                if id(layer) not in seen:
                    seen.add(id(layer))
                    layers.append(layer)
        cached = (layers, sources, gates_of(layers))
        self.__dict__["_pd_layers_cache"] = cached
        return cached

    def pd_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The parameters of every layer, each once (for an optimizer)."""
        seen: set[int] = set()
        for layer in self.pd_layers:
            for parameter in layer.parameters():
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield parameter

    def pd_to(self, device: str | torch.device) -> Transform:
        """Move every layer to ``device`` and apply on that device from now on; returns ``self``.

        Other pipelines sharing these layers follow: each layer records where ``pd_to`` put it,
        and a pipeline applies on the device its first layer was last moved to."""
        device = str(torch.device(device))
        for layer in self.pd_layers:
            layer.to(device)
            layer.__dict__["_pd_moved_to"] = device  # a plain entry: not a module attribute
        self._pd_set_device(device)
        return self

    def _pd_set_device(self, device: str) -> None:
        for t in self.pd_iter_transforms():
            t.__dict__["_pd_device"] = device

    def _pd_sync_device(self) -> str:
        """The device to apply on: ``pd_to``'s, or where a ``pd_to`` of another pipeline that
        shares this one's layers moved them since (``train.pd_to("cuda")`` moves the model of
        ``predict`` too)."""
        layers = self._pd_layer_list()
        if layers:
            moved = layers[0].__dict__.get("_pd_moved_to")
            if moved is not None and moved != self._pd_device:
                self._pd_set_device(moved)
        return self._pd_device

    @property
    def pd_device(self) -> str:
        """Where the pipeline applies (see :meth:`pd_to`)."""
        return self._pd_sync_device()

    def pd_forward_device_check(self) -> bool:
        """Check that every layer of the forward stage is on :attr:`pd_device`; ``True``, or
        :class:`padlc.WrongDeviceError` naming the first layer that is not (moved with its own
        ``.to()`` instead of ``pd_to``, say). A device without an index (``"cuda"``) matches any.
        The apply methods do not run this check on every call; call it where it helps."""
        wanted = torch.device(self.pd_device)
        for layer in self.pd_forward.pd_layers:
            for name, tensor in itertools.chain(layer.named_parameters(), layer.named_buffers()):
                here = tensor.device
                if here.type != wanted.type or (
                    wanted.index is not None and here.index != wanted.index
                ):
                    raise WrongDeviceError(
                        f"The layer {type(layer).__name__} of `{self!r}`'s forward stage has "
                        f"{name!r} on {here}, but the pipeline applies on {wanted}. Move the "
                        f"pipeline with `.pd_to({str(wanted)!r})` (it moves every layer) rather "
                        "than a layer with its own `.to()`."
                    )
        return True

    # -- applying ------------------------------------------------------------------------------
    def _pd_check_callable_directly(self) -> None:
        if _context.current() is None and self._pd_needs_mode():
            raise ModeError(
                f"`{self!r}` contains `batch`, `unbatch` or a mode switch, so it runs only "
                "through an apply method: use `.infer_apply(item)` for one item, "
                "`.eval_apply(items)` or `.train_apply(items)` for many."
            )

    def infer_apply(self, item: Any) -> Any:
        """Apply to one item: preprocess, add the batch axis (``batch``), forward without gradients,
        remove the batch axis (``unbatch``), postprocess.

        >>> from padlc import transform, batch, unbatch
        >>> (transform(lambda x: x + 1) >> batch >> transform(lambda t: t * 2) >> unbatch).infer_apply(1)
        tensor(4)

        Without ``unbatch`` the forward's output is returned as it is, batch axis included (a batch
        of one, or whatever the forward makes of the batch: a loss, a dict), on the CPU:

        >>> (transform(lambda x: x + 1) >> batch >> transform(lambda t: t * 2)).infer_apply(1)
        tensor([4])
        """
        from padlc.language.apply import infer_apply

        return infer_apply(self, item)

    @suggest_keywords
    def eval_apply(
        self,
        items: Iterable[Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int = 0,
        flatten: bool = False,
        use_post: bool = True,
        progress: bool = False,
        post_workers: int = 0,
        post_threads: int | None = None,
        pin_memory: bool | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        multiprocessing_context: str | BaseContext | None = None,
        loader_options: Mapping[str, Any] | None = None,
    ) -> Outputs:
        """Apply to many items for evaluation (no gradients, layers in eval mode); the outputs
        come lazily, in input order, one per item (one per batch when the pipeline has no
        postprocess stage and not ``flatten``).

        - ``batch_size``: items per forward (default 64); ``drop_last`` leaves out a last,
          smaller batch.
        - ``num_workers``: processes that preprocess and collate whole batches (0: inline);
          ``multiprocessing_context`` (``"fork"``, ``"spawn"``, ``"forkserver"``) starts them;
          ``loader_options``: other options of their ``torch.utils.data.DataLoader``
          (``{"timeout": 60, "worker_init_fn": f, "prefetch_factor": 4}``).
        - ``post_workers``: processes that postprocess whole batches (outputs must pickle);
          ``post_threads``: a background thread for the post stage (default: 1 on CUDA, else 0).
        - ``pin_memory``: pinned batches for a CUDA device (default: when the device is CUDA).
        - ``shuffle``: a random order, drawn with ``generator`` (error notes still name items by
          their index in ``items``); ``progress``: a tqdm progress bar; ``use_post=False``: the
          forward's outputs, without the postprocess.

        >>> from padlc import transform, batch, unbatch
        >>> p = transform(lambda x: x + 1) >> batch >> transform(lambda t: t * 2) >> unbatch
        >>> [int(y) for y in p.eval_apply([1, 2, 3], batch_size=2)]
        [4, 6, 8]
        """
        from padlc.language.apply import batched_apply

        return batched_apply(
            self,
            items,
            "eval",
            batch_size=batch_size,
            num_workers=num_workers,
            flatten=flatten,
            use_post=use_post,
            progress=progress,
            post_workers=post_workers,
            post_threads=post_threads,
            pin_memory=pin_memory,
            shuffle=shuffle,
            generator=generator,
            drop_last=drop_last,
            multiprocessing_context=multiprocessing_context,
            loader_options=loader_options,
        )

    @suggest_keywords(
        hint={
            "post_workers": "train_apply postprocesses in this process: its outputs carry "
            "gradients, which cannot cross to another process (post_workers is for eval_apply)."
        }
    )
    def train_apply(
        self,
        items: Iterable[Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int = 0,
        flatten: bool = False,
        use_post: bool = True,
        progress: bool = False,
        post_threads: int | None = None,
        pin_memory: bool | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        multiprocessing_context: str | BaseContext | None = None,
        loader_options: Mapping[str, Any] | None = None,
    ) -> Outputs:
        """Apply to many items for training (gradients on, layers in train mode); the layers'
        modes are restored when the outputs finish. The options are :meth:`eval_apply`'s but
        ``post_workers``: outputs that carry gradients cannot cross to another process.

        >>> import torch
        >>> from padlc import transform, batch
        >>> loss = transform(lambda x: torch.tensor([float(x)])) >> batch >> transform(torch.sum)
        >>> [float(l) for l in loss.train_apply([1, 2, 3, 4], batch_size=2, shuffle=False)]
        [3.0, 7.0]
        """
        from padlc.language.apply import batched_apply

        return batched_apply(
            self,
            items,
            "train",
            batch_size=batch_size,
            num_workers=num_workers,
            flatten=flatten,
            use_post=use_post,
            progress=progress,
            post_threads=post_threads,
            pin_memory=pin_memory,
            shuffle=shuffle,
            generator=generator,
            drop_last=drop_last,
            multiprocessing_context=multiprocessing_context,
            loader_options=loader_options,
        )

    # -- saving --------------------------------------------------------------------------------
    def pd_save(self, path: str, force_overwrite: bool = False) -> Any:
        """Save with its code (see :func:`padlc.save`)."""
        from padlc.artifact import save

        return save(self, path, force_overwrite=force_overwrite)

    # -- printing ------------------------------------------------------------------------------
    def _pd_short_repr(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._pd_short_repr()

    def __str__(self) -> str:
        from padlc.language.printing import render_ascii

        return render_ascii(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))

    def _repr_html_(self) -> str:
        from padlc.language.printing import render_html

        return render_html(self)


class CallableTransform(Transform):
    """A transform called through ``_pd_call`` (composites, markers, mode switches).

    Not on :class:`Transform` itself: a wrapped user class keeps its own ``__call__``, and the
    transform mixin comes first in its MRO.
    """

    def __call__(self, *args: Any) -> Any:
        self._pd_check_callable_directly()
        return self._pd_call(args[0] if len(args) == 1 else args)


def callable_name(fn: Callable[..., Any]) -> str | None:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>" or not name.isidentifier():
        return None
    return name
