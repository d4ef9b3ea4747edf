"""Running a built artifact on a Ray cluster: batch inference with Ray Data, online serving with
Ray Serve. Ray is the distributed engine; this package is the glue between it and a ``.padl``
artifact, so that its outputs are those of ``infer_apply`` and ``eval_apply``.

* :func:`predict`: a Ray Dataset's column through the pipeline (``map_batches`` with an actor
  pool: one artifact load per actor, one forward per batch);
* :func:`deployment`: a Ray Serve application answering ``POST /predict`` as ``padlc serve``
  does (the same codec and request handling, :mod:`padl_runtime.serve.protocol`), batching
  concurrent requests with ``@serve.batch``.

>>> import ray, padl_runtime.ray                                             # doctest: +SKIP
>>> ds = ray.data.from_items([{"item": x} for x in items])                  # doctest: +SKIP
>>> padl_runtime.ray.predict(ds, "model.padl").take(3)                      # doctest: +SKIP
>>> from ray import serve                                                    # doctest: +SKIP
>>> serve.run(padl_runtime.ray.deployment("model.padl"))                    # doctest: +SKIP

Needs the ``ray`` extra (``pip install 'padl-runtime[ray]'``); ``import padl_runtime`` and
``import padl_runtime.ray`` do not import Ray, calling :func:`predict` or :func:`deployment`
does. See docs/scaling.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from padl_runtime.ray.errors import RowError

if TYPE_CHECKING:
    from padl_runtime.ray.data import predict
    from padl_runtime.ray.serve import deployment

__all__ = ["RowError", "deployment", "predict"]


def __getattr__(name: str) -> Any:
    # Ray is imported only when it is used: `import padl_runtime.ray` works without it.
    if name == "predict":
        from padl_runtime.ray.data import predict

        return predict
    if name == "deployment":
        from padl_runtime.ray.serve import deployment

        return deployment
    raise AttributeError(f"module 'padl_runtime.ray' has no attribute {name!r}")
