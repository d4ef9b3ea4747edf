"""``python -m benchmarks.serve`` runs end to end on a tiny budget and writes its JSON.

Timings are not checked (they are reported by the benchmark, never asserted in tests); what is
checked is that every server answered, that the answers were compared with ``infer_apply``
before anything was timed, and that every ``padlc serve`` drained and exited 0 on SIGTERM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.serve.__main__ import BATCH_1, EMPTY, HAND, PADLC, main

pytestmark = pytest.mark.slow


def test_serve_benchmark_writes_every_server_and_target(tmp_path: Path, capsys) -> None:
    out = tmp_path / "serve.json"
    argv = ["--workloads", "mlp", "--seconds", "0.3", "--rounds", "1", "--concurrency", "1,4"]
    assert main([*argv, "--json", str(out)]) == 0

    results = json.loads(out.read_text())
    mlp = results["workloads"]["mlp"]
    assert set(mlp["table"]) == {PADLC, BATCH_1, HAND, EMPTY}
    for server, cells in mlp["table"].items():
        for cell in cells.values():
            assert cell["rate"] > 0 and cell["errors"] == 0, server
    assert mlp["exit_codes"][PADLC] == 0 and mlp["exit_codes"][BATCH_1] == 0
    assert {t["what"].split(":")[0] for t in results["targets"]} >= {"mlp, c=4", "mlp, c=1"}
    assert "FastAPI + infer_apply" in capsys.readouterr().out
