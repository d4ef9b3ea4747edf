"""``padlc demo``: train, save, build, load and compare a real pipeline, end to end, on the CPU.

The example pipeline (``padlc/demo/digits.py``, also ``examples/digits.py``) is copied into the output
directory and imported from there, the way a user's own script is: saving copies its source into the
artifact, as it would for any project. Every step prints what it did; the whole run takes under two
minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from padlc.lowering import BackendName

__all__ = ["DemoResult", "add_arguments", "main", "run"]

MIN_ACCURACY = 0.95
_SOURCE = Path(__file__).with_name("digits.py")


@dataclass
class DemoResult:
    out: Path
    accuracy: float
    saved: Path
    built: Path
    backends: tuple[str, ...]
    runtime_accuracy: dict[str, float]
    table: list[dict[str, Any]] = field(default_factory=list)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _heading(step: int, text: str) -> None:
    _say()
    _say(f"[{step}/5] {text}")


_RUNTIME_CHECK = textwrap.dedent(
    """
    import json, sys
    import importlib.abc

    class _NoPadlc(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "padlc" or name.startswith("padlc."):
                raise ImportError("padlc is not available in this process (runtime only)")
            return None

    sys.meta_path.insert(0, _NoPadlc())
    import numpy as np
    import padl_runtime

    artifact, backend, data = sys.argv[1], sys.argv[2], sys.argv[3]
    images = np.load(data + "/test_images.npy")
    labels = json.load(open(data + "/test_labels.json"))
    pipeline = padl_runtime.load(artifact, backend=backend)
    predictions = list(pipeline.eval_apply(list(images), batch_size=256))
    hits = sum(p["digit"] == y for p, y in zip(predictions, labels))
    print(json.dumps({"accuracy": hits / len(labels), "backend": pipeline.backend.name,
                      "padlc_imported": "padlc" in sys.modules}))
    """
)


def _runtime_accuracy(artifact: Path, backend: str, data: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_CHECK, str(artifact), backend, str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"loading {artifact} with padl_runtime failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _throughput(
    apply_many: Any, apply_one: Any, images: list[Any], calls: int, repeat: int = 3
) -> tuple[float, float]:
    """(items/s of batched apply over ``images``, median single-item latency in ms), each the best
    of ``repeat`` rounds after a warm-up round (the first batch of a new shape is slower)."""
    best_rate, best_latency = 0.0, float("inf")
    for _ in range(repeat + 1):
        start = time.perf_counter()
        count = sum(1 for _ in apply_many(images))
        best_rate = max(best_rate, count / (time.perf_counter() - start))
        latencies = []
        for image in images[:calls]:
            begin = time.perf_counter()
            apply_one(image)
            latencies.append(time.perf_counter() - begin)
        latencies.sort()
        best_latency = min(best_latency, latencies[len(latencies) // 2])
    return best_rate, 1000 * best_latency


def run(
    out: Path | None = None, epochs: int = 8, backends: tuple[BackendName, ...] | None = None
) -> DemoResult:
    """Run the demo into ``out`` (a fresh temporary directory by default)."""
    import numpy as np
    import torch

    import padl_runtime
    import padlc
    from padlc.cli import import_file, inspect_text

    started = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="padlc-demo-")) if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    script = out / "digits.py"
    shutil.copyfile(_SOURCE, script)
    digits = import_file(script.resolve())
    torch.set_num_threads(max(1, torch.get_num_threads()))

    _heading(1, f"Training the digits pipeline for {epochs} epochs (train_apply)")
    train_pairs, test_images, test_labels = digits.load_data()
    loss = digits.train(train_pairs, epochs=epochs, progress=True)
    accuracy = digits.accuracy(test_images, test_labels)
    _say(
        f"final training loss {loss:.4f}; test accuracy {accuracy:.1%} on {len(test_labels)} images"
    )
    if accuracy < MIN_ACCURACY:
        raise SystemExit(
            f"test accuracy {accuracy:.1%} is below {MIN_ACCURACY:.0%}: training failed"
        )

    _heading(2, "The pipeline")
    _say(str(digits.classify))

    _heading(3, "Saving (padlc.save) and building (padlc.build)")
    saved = padlc.save(digits.classify, out / "digits.padl", force_overwrite=True)
    _say(f"saved with its code: {saved}")
    examples = test_images[:16]
    chosen: tuple[BackendName, ...] = backends or (
        ("auto", "onnx") if importlib.util.find_spec("onnxruntime") else ("auto",)
    )
    # One artifact holding a verified forward per backend; the runtime can load any of them.
    result = padlc.build(
        digits.classify, out / "digits-built.padl", inputs=examples, backend=chosen,
        force_overwrite=True,
    )  # fmt: skip
    _say(result.report())
    _say()
    _say(inspect_text(result.path))

    _heading(4, "Loading the built artifact in a fresh process with padl_runtime only")
    data = out / "data"
    data.mkdir(exist_ok=True)
    np.save(data / "test_images.npy", np.stack(test_images))
    (data / "test_labels.json").write_text(json.dumps(test_labels))
    runtime_accuracy: dict[str, float] = {}
    for backend in result.backends:
        check = _runtime_accuracy(result.path, backend, data)
        runtime_accuracy[backend] = check["accuracy"]
        same = "unchanged" if abs(check["accuracy"] - accuracy) < 1e-9 else "CHANGED"
        _say(
            f"{backend:>12}: accuracy {check['accuracy']:.1%} ({same}); "
            f"padlc imported: {check['padlc_imported']}"
        )
        if same != "unchanged":
            raise SystemExit(f"the {backend} forward changed the accuracy")

    _heading(5, "Eager vs built, on this machine")
    table = []
    items, one = _throughput(
        lambda xs: digits.classify.eval_apply(xs, batch_size=256),
        digits.classify.infer_apply,
        test_images,
        calls=100,
    )
    table.append({"pipeline": "padlc eager", "items_per_s": items, "infer_ms": one})
    for backend in result.backends:
        compiled = padl_runtime.load(result.path, backend=backend)
        items, one = _throughput(
            lambda xs, c=compiled: c.eval_apply(xs, batch_size=256),
            compiled.infer_apply,
            test_images,
            100,
        )
        table.append(
            {
                "pipeline": f"built, {compiled.backend.name}",
                "items_per_s": items,
                "infer_ms": one,
            }
        )
    _say(f"{'pipeline':<28}{'eval_apply items/s':>20}{'infer_apply p50 ms':>20}")
    for row in table:
        _say(f"{row['pipeline']:<28}{row['items_per_s']:>20.0f}{row['infer_ms']:>20.3f}")
    _say()
    _say(f"done in {time.perf_counter() - started:.0f} s; everything is in {out}")
    return DemoResult(out, accuracy, saved, result.path, result.backends, runtime_accuracy, table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: a new temporary one)"
    )
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    from padlc.cli import backend_names

    parser.add_argument(
        "--backend", action="append", dest="backends", default=None, type=backend_names,
        help="build this backend (repeatable, or a comma-separated list; default: auto, and onnx "
        "when onnxruntime is installed)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    backends = tuple(name for names in args.backends or () for name in names)
    run(args.out, epochs=args.epochs, backends=backends or None)
    return 0
