"""``CompiledPipeline``: a built artifact's stages, ready to apply to one item or many."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import torch

from padl_runtime._batch_source import add_note
from padl_runtime.collate import collate, move_to_device, uncollate
from padl_runtime.errors import ModeUnavailableError
from padl_runtime.failures import ItemError, apply_each, collate_or_isolate
from padl_runtime.keywords import suggest_keywords
from padl_runtime.manifest import BackendEntry, ForwardSection, Manifest
from padl_runtime.treespec import flattener, unflattener

__all__ = ["CompiledPipeline"]


def _shape_checked(
    forward: Callable[..., Any], section: ForwardSection, backend: str
) -> Callable[..., Any]:
    """``forward`` checking its flat input tensors against what it was compiled for: the dtype,
    every axis but the batch axis, and the batch axis at most ``max_batch``. In the common case
    (batch axis first, no max_batch) that is one dtype and one ``shape[1:]`` comparison per input."""
    batch_dim, max_batch = section.batch_dim, section.max_batch
    specs = [
        (
            spec["name"],
            getattr(torch, str(spec["dtype"]), None),
            tuple(None if d == "batch" else int(d) for d in spec["shape"]),
        )
        for spec in section.inputs
    ]
    expected = tuple((dtype, shape[1:]) for _, dtype, shape in specs)
    fast = (
        batch_dim == 0
        and max_batch is None
        and all(d is not None and None not in s for d, s in expected)
    )

    def explain(
        name: str, dtype: Any, want: tuple[int | None, ...], got: torch.Tensor
    ) -> ValueError:
        shown = ", ".join("batch" if d is None else str(d) for d in want)
        kind = str(dtype).removeprefix("torch.")
        return ValueError(
            f"The {backend} forward takes {name} as {kind} of shape [{shown}]: its dtype and "
            "every axis but the batch axis were fixed when it was built, from the examples given "
            f"to padlc build. This batch has {str(got.dtype).removeprefix('torch.')} "
            f"{list(got.shape)}. Make the items that (pad or resize them, or convert them, in the "
            "preprocess), or use a backend that follows the input's shape (torchscript or eager: "
            "padl_runtime.load(path, backend=...) when the artifact has one, else padlc build "
            "--backend torchscript)."
        )

    def check(tensors: tuple[Any, ...]) -> None:
        for (name, dtype, want), tensor in zip(specs, tensors, strict=True):
            shape = tensor.shape
            if (
                (dtype is not None and tensor.dtype != dtype)
                or len(shape) != len(want)
                or any(w is not None and w != g for w, g in zip(want, shape, strict=True))
            ):
                raise explain(name, dtype, want, tensor)
            if max_batch is not None and shape[batch_dim] > max_batch:
                raise ValueError(
                    f"A batch of {shape[batch_dim]} items is larger than the {backend} forward "
                    f"accepts: it was built with max_batch={max_batch}. Pass batch_size <= "
                    f"{max_batch}, or rebuild with a larger --max-batch."
                )

    if fast and len(expected) == 1:
        ((dtype, tail),) = expected

        def one(*tensors: Any) -> Any:
            first = tensors[0]
            if first.dtype != dtype or first.shape[1:] != tail:
                check(tensors)  # raises, saying what differs
            return forward(*tensors)

        return one

    if fast:

        def many(*tensors: Any) -> Any:
            if tuple((t.dtype, t.shape[1:]) for t in tensors) != expected:
                check(tensors)
            return forward(*tensors)

        return many

    def checked(*tensors: Any) -> Any:
        check(tensors)
        return forward(*tensors)

    return checked


def _first(value: torch.Tensor) -> torch.Tensor:
    return value[0] if value.dim() else value


class CompiledPipeline:
    """A loaded ``.padl`` artifact: ``preprocess`` → collate → ``forward`` → split → ``postprocess``.

    ``preprocess`` and ``postprocess`` are the generated functions (``None`` when the pipeline has no
    such stage); ``forward`` takes a collated batch and returns the forward's nested output.
    Calling the pipeline is :meth:`infer_apply`.
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        *,
        preprocess: Callable[[Any], Any] | None,
        forward: Callable[..., Any],
        flat: bool,
        postprocess: Callable[[Any], Any] | None,
        backend: BackendEntry,
        device: str,
        fixed_shapes: bool = False,
        eval_stages: tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None] | None = None,
        eval_unavailable: str = "",
        eval_forward: Callable[[Any], Any] | None = None,
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.backend = backend
        self.device = device
        self.preprocess = preprocess
        self.postprocess = postprocess
        # infer_apply calls the generated functions themselves (no pickling wrapper in the way)
        self._pre = getattr(preprocess, "fn", preprocess)
        self._post = getattr(postprocess, "fn", postprocess)
        # eval_apply runs eval mode's stages (other functions when the pipeline has mode switches)
        self.eval_preprocess, self.eval_postprocess = eval_stages or (preprocess, postprocess)
        self._eval_pre = getattr(self.eval_preprocess, "fn", self.eval_preprocess)
        self._eval_post = getattr(self.eval_postprocess, "fn", self.eval_postprocess)
        self.eval_unavailable = eval_unavailable
        # without `batch`: eval mode's per-item forward, when it differs from infer mode's
        self._eval_forward = getattr(eval_forward, "fn", eval_forward)
        self._has_batch = manifest.stages.has_batch
        self._has_unbatch = bool(manifest.stages.has_unbatch)
        # Without `unbatch`, infer_apply returns the forward's output as it is (batch axis and
        # all: a loss, a batch of one). Older manifests do not say; they removed the axis.
        self._keeps_batch_axis = self._has_batch and manifest.stages.has_unbatch is False
        self._on_cpu = torch.device(device).type == "cpu"
        section = manifest.forward
        assert section is not None
        self.max_batch = section.max_batch
        if flat and fixed_shapes and section.inputs:
            forward = _shape_checked(forward, section, backend.name)
        if flat:
            flatten = flattener(section.input_spec)
            unflatten = unflattener(section.output_spec)
            run = forward
            self.forward: Callable[[Any], Any] = lambda batch: unflatten(run(*flatten(batch)))
            # infer_apply: one item; the batch axis is added and removed tensor by tensor.
            self._infer_forward = self._flat_infer(forward, section.input_spec, unflatten)
            # apply_batch: a batch; its flat outputs are split into items tensor by tensor too.
            self._split_forward = self._flat_split(forward, flatten, unflatten)
        else:
            self.forward = forward
            self._infer_forward = self._nested_infer(forward)
            self._split_forward = self._nested_split(forward)

    # -- one item ------------------------------------------------------------------------------
    def _flat_infer(
        self, forward: Callable[..., Any], spec: dict[str, Any], unflatten: Callable[[Any], Any]
    ) -> Callable[[Any], Any]:
        on_cpu, device = self._on_cpu, self.device
        item_of = (lambda t: t) if self._keeps_batch_axis else _first
        if spec.get("t") == "tensor" and on_cpu:

            def single(item: Any) -> Any:
                x = item.unsqueeze(0) if isinstance(item, torch.Tensor) else collate([item])
                return unflatten([item_of(t) for t in forward(x)])

            return single
        flatten = flattener(spec)

        def general(item: Any) -> Any:
            batch = collate([item])
            if not on_cpu:
                batch = move_to_device(batch, device)
            outputs = forward(*flatten(batch))
            if not on_cpu:
                outputs = [t.cpu() for t in outputs]
            return unflatten([item_of(t) for t in outputs])

        return general

    def _nested_infer(self, forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
        on_cpu, device, has_batch = self._on_cpu, self.device, self._has_batch
        keeps_batch_axis = self._keeps_batch_axis

        def run(item: Any) -> Any:
            if not has_batch:
                return forward(item)
            batch = collate([item])
            if not on_cpu:
                batch = move_to_device(batch, device)
            output = forward(batch)
            if not on_cpu:
                output = move_to_device(output, "cpu")
            return output if keeps_batch_axis else uncollate(output)[0]

        return run

    def infer_apply(self, item: Any) -> Any:
        """Apply the pipeline to one raw item (what the original pipeline's ``infer_apply`` takes)."""
        pre, post = self._pre, self._post
        if pre is not None:
            item = pre(item)
        with torch.no_grad():
            output = self._infer_forward(item)
        if post is not None:
            output = post(output)
        return output

    __call__ = infer_apply

    # -- one batch, item by item: what a server or a Ray actor calls ----------------------------
    def _flat_split(
        self,
        forward: Callable[..., Any],
        flatten: Callable[[Any], Any],
        unflatten: Callable[[Any], Any],
    ) -> Callable[[Any, int], list[Any]]:
        on_cpu = self._on_cpu

        def split(batch: Any, count: int) -> list[Any]:
            outputs = forward(*flatten(batch))
            if not on_cpu:
                outputs = [t.cpu() for t in outputs]
            # row i of every output tensor, rebuilt as infer_apply rebuilds one item's outputs
            columns = [t.unbind(0) if t.dim() else (t,) * count for t in outputs]
            return [unflatten(list(row)) for row in zip(*columns)]

        return split

    def _nested_split(self, forward: Callable[[Any], Any]) -> Callable[[Any, int], list[Any]]:
        on_cpu = self._on_cpu

        def split(batch: Any, count: int) -> list[Any]:
            output = forward(batch)
            if not on_cpu:
                output = move_to_device(output, "cpu")
            return uncollate(output)

        return split

    def apply_batch(self, items: Sequence[Any], *, return_exceptions: bool = False) -> list[Any]:
        """Apply the pipeline to one batch of raw items: preprocess each, collate, one forward,
        split, postprocess each. ``outputs[i]`` is what ``infer_apply(items[i])`` returns (up to
        floating-point rounding: a batched forward may add up in another order).

        With ``return_exceptions=True`` an item that fails gets a
        :class:`~padl_runtime.ItemError` in its place (naming the stage and the step that
        raised) and the other items go on; otherwise the first failure raises, with a note
        naming the item. It is :meth:`preprocess_items`, :meth:`forward_items` and
        :meth:`postprocess_items` in a row, which a server runs in different places.

        >>> outputs = pipeline.apply_batch(["a raw item", "another"])   # doctest: +SKIP
        """
        values = self.preprocess_items(items, return_exceptions=return_exceptions)
        outputs = self.forward_items(values, return_exceptions=return_exceptions)
        return self.postprocess_items(outputs, return_exceptions=return_exceptions)

    def preprocess_items(
        self, items: Sequence[Any], *, return_exceptions: bool = False
    ) -> list[Any]:
        """The preprocess of each raw item (the items themselves when there is none);
        :class:`~padl_runtime.ItemError` entries pass through unchanged."""
        if self._pre is None:
            return list(items)
        return apply_each(self._pre, items, "preprocess", return_exceptions)

    def postprocess_items(
        self, outputs: Sequence[Any], *, return_exceptions: bool = False
    ) -> list[Any]:
        """The postprocess of each item's forward output; :class:`~padl_runtime.ItemError`
        entries pass through unchanged."""
        if self._post is None:
            return list(outputs)
        return apply_each(self._post, outputs, "postprocess", return_exceptions)

    def forward_items(self, values: Sequence[Any], *, return_exceptions: bool = False) -> list[Any]:
        """Each preprocessed value's forward output, from one forward of their batch (collated,
        moved to the pipeline's device and back, split into items); ItemError entries pass
        through unchanged.

        With ``return_exceptions=True``, values that cannot be batched with the others (another
        shape) fail alone, and when the forward of the batch raises, each item is run alone so
        that only the items that fail get an :class:`~padl_runtime.ItemError`.
        """
        results = list(values)
        positions = [i for i, v in enumerate(values) if not isinstance(v, ItemError)]
        if not positions:
            return results
        live = [values[i] for i in positions]
        with torch.no_grad():
            if not self._has_batch:  # a forward per item: the pipeline has no `batch`
                outputs = apply_each(self._infer_forward, live, "forward", return_exceptions)
            elif return_exceptions:
                outputs = self._forward_isolating(live)
            else:
                try:
                    outputs = self._split_forward(self._to_device(collate(live)), len(live))
                except Exception as exc:
                    add_note(exc, f"in the forward of a batch of {len(live)} items", "forward")
                    raise
        for position, output in zip(positions, outputs, strict=True):
            results[position] = output.at(position) if isinstance(output, ItemError) else output
        return results

    def _to_device(self, batch: Any) -> Any:
        return batch if self._on_cpu else move_to_device(batch, self.device)

    def _forward_isolating(self, values: list[Any]) -> list[Any]:
        batch, kept, errors = collate_or_isolate(values)
        outputs: list[Any] = [errors.get(i) for i in range(len(values))]
        if not kept:
            return outputs
        try:
            done = self._split_forward(self._to_device(batch), len(kept))
        except Exception as exc:
            if len(kept) == 1:
                done = [ItemError.from_exception(exc, kept[0], "forward")]
            else:  # find the items that fail: each alone
                done = [self._forward_isolating([values[i]])[0] for i in kept]
                done = [d.at(i) if isinstance(d, ItemError) else d for i, d in zip(kept, done)]
        for position, output in zip(kept, done, strict=True):
            outputs[position] = output
        return outputs

    # -- many items ----------------------------------------------------------------------------
    def forward_batch(self, batch: Any) -> Any:
        """The forward of a collated batch already on the pipeline's device, without gradients
        (what :meth:`eval_apply` runs once per batch, and :meth:`forward_items` too)."""
        with torch.no_grad():
            return self.forward(batch)

    @suggest_keywords(
        hint={
            "shuffle": "The runtime's outputs always come in input order: shuffle the items "
            "before passing them."
        }
    )
    def eval_apply(
        self,
        items: Iterable[Any],
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        flatten: bool = False,
        use_post: bool = True,
        progress: bool = False,
        post_workers: int = 0,
        post_threads: int | None = None,
        pin_memory: bool | None = None,
        drop_last: bool = False,
        multiprocessing_context: str | BaseContext | None = None,
        loader_options: Mapping[str, Any] | None = None,
    ) -> Any:
        """Apply to many items in batches; an iterator of outputs in input order.

        Preprocessing and collation run in ``num_workers`` processes (started with
        ``multiprocessing_context``; ``loader_options`` are the other options of their
        ``torch.utils.data.DataLoader``, e.g. ``{"timeout": 60}``), postprocessing in
        ``post_workers`` processes; see :func:`padl_runtime.executor.run_batches`. The stages
        are eval mode's (they differ from infer's when the pipeline has mode switches);
        :class:`~padl_runtime.ModeUnavailableError` when the artifact's forward was built for
        infer mode only.
        """
        options = dict(loader_options or {})
        if multiprocessing_context is not None:
            options["multiprocessing_context"] = multiprocessing_context
        if self.eval_unavailable:
            raise ModeUnavailableError(
                f"{self.root} cannot apply eval mode: {self.eval_unavailable}.",
                path=str(self.root),
            )
        if not self._has_batch:
            return (self._eval_item(item) for item in items)
        if self.max_batch is not None and batch_size > self.max_batch:
            raise ValueError(
                f"batch_size={batch_size} is larger than this artifact's forward accepts: it was "
                f"built with max_batch={self.max_batch}. Pass batch_size <= {self.max_batch}, or "
                "rebuild with a larger --max-batch."
            )
        from padl_runtime.executor import run_batches

        return run_batches(
            items,
            # Only what travels to worker processes is wrapped (spawn pickles it by reference to
            # the artifact); in this process the generated functions are called directly.
            preprocess=self.eval_preprocess if num_workers else self._eval_pre,
            forward=self.forward_batch,
            postprocess=self.eval_postprocess if post_workers else self._eval_post,
            batch_size=batch_size,
            num_workers=num_workers,
            device=self.device,
            # `unbatch` with nothing after it (or only steps moved into the forward) still means
            # one output per item, as the pipeline's own eval_apply gives.
            flatten=flatten or (use_post and self._has_unbatch),
            use_post=use_post,
            progress=progress,
            outputs_to_cpu=True,
            post_workers=post_workers,
            post_threads=post_threads,
            pin_memory=pin_memory,
            drop_last=drop_last,
            **options,
        )

    def _eval_item(self, item: Any) -> Any:
        """One item through eval mode's stages (a pipeline without ``batch``)."""
        pre, post = self._eval_pre, self._eval_post
        if pre is not None:
            item = pre(item)
        with torch.no_grad():
            output = (self._eval_forward or self._infer_forward)(item)
        return output if post is None else post(output)

    def __repr__(self) -> str:
        return (
            f"CompiledPipeline({self.manifest.pipeline!r}, backend={self.backend.name!r}, "
            f"device={self.device!r}, path={str(self.root)!r})"
        )
