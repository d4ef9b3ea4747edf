"""Running built artifacts in ONE fresh process that can import ``padl_runtime`` but not ``padlc``
(a fresh, independent check of what the build's own verification saw)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from padlc.builder import verify_child

_CHILD = r"""
import json, pickle, sys, time
class _NoPadlc:
    def find_spec(self, name, path=None, target=None):
        if name == "padlc" or name.startswith("padlc."):
            raise ImportError("padlc must not be imported by padl_runtime or generated code")
sys.meta_path.insert(0, _NoPadlc())
sys.path[:] = json.loads(sys.argv[1])
import importlib.util
_spec = importlib.util.spec_from_file_location("verify_child", sys.argv[2])  # not padlc: a file
_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_child)
canonical = _child.canonical
import padl_runtime
jobs = pickle.load(open(sys.argv[3], "rb"))
out = {}
for key, (path, inputs, backend) in jobs.items():
    result = out[key] = {}
    try:
        started = time.perf_counter()
        p = padl_runtime.load(path, backend=backend)
        result["load_seconds"] = time.perf_counter() - started
        result["backend"] = p.backend.name
        result["infer"] = [canonical(p.infer_apply(x)) for x in inputs]
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        continue
    try:
        result["eval"] = [canonical(y) for y in p.eval_apply(inputs, batch_size=2, flatten=True)]
    except Exception as exc:
        result["eval_error"] = f"{type(exc).__name__}: {exc}"
out["__padlc_imported__"] = any(m.split(".")[0] == "padlc" for m in sys.modules)
pickle.dump(out, open(sys.argv[4], "wb"))
"""


def run_in_runtime(jobs: dict[str, tuple[Path, list[Any], str | None]]) -> dict[str, Any]:
    """``{key: (artifact, inputs, backend or None)}`` -> ``{key: {"backend", "infer", "eval" or
    "eval_error"} or {"error"}}``, run in one process without padlc; raises if it imported padlc."""
    with tempfile.TemporaryDirectory(prefix="padlc-runtime-child-") as scratch:
        data, out = Path(scratch, "jobs.pkl"), Path(scratch, "out.pkl")
        data.write_bytes(pickle.dumps({k: (str(p), i, b) for k, (p, i, b) in jobs.items()}))
        process = subprocess.run(
            [sys.executable, "-I", "-B", "-c", _CHILD, json.dumps(sys.path), verify_child.__file__,
             str(data), str(out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr[-3000:]
        results = pickle.loads(out.read_bytes())
    assert results.pop("__padlc_imported__") is False, "the runtime process imported padlc"
    return results
