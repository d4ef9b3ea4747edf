"""The benchmark suite runs end to end on a tiny size and writes the JSON it documents.

Timings are not checked here (they are reported by ``make bench``, never asserted in tests).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.suite import main

TINY_RUN = ["--items", "300", "--repeat", "1", "--latency-calls", "20", "--backends", "none"]


def test_suite_writes_tables_for_one_workload(tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.json"
    assert main(["--workloads", "tiny", *TINY_RUN, "--json", str(out)]) == 0

    results = json.loads(out.read_text())
    assert set(results) == {"environment", "workloads", "memory", "targets"}
    assert {"command", "torch", "device", "cpu_count", "options"} <= set(results["environment"])
    tiny = results["workloads"]["tiny"]
    assert {"items", "batch_size", "runs", "latency", "skipped_backends"} <= set(tiny)
    (run,) = tiny["runs"]
    assert run["workers"] == 0
    assert {"preprocess alone", "forward alone", "postprocess alone", "hand-written loop",
            "PADL-style post loop", "padlc eval_apply"} <= set(run["throughput"])  # fmt: skip
    assert {"items_per_s", "vs_hand", "vs_limit"} <= set(run["throughput"]["padlc eval_apply"])
    assert run["limit_items_per_s"] > 0
    assert {"hand-written single item", "padlc infer_apply"} <= set(tiny["latency"])
    assert {"p50_us", "p99_us", "p50_vs_hand"} <= set(tiny["latency"]["padlc infer_apply"])
    assert any(
        t["what"].startswith("tiny, workers 0: padlc eval_apply") for t in results["targets"]
    )
    assert "hand-written loop" in capsys.readouterr().out


def test_post_workers_add_rows_and_keep_the_item_count(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert main(["--workloads", "tiny", *TINY_RUN, "--post-workers", "2", "--json", str(out)]) == 0

    tiny = json.loads(out.read_text())["workloads"]["tiny"]
    assert tiny["items"] == 300
    assert "padlc eval_apply (post workers 2)" in tiny["runs"][0]["throughput"]


def test_memory_mode_reports_start_peak_and_end(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    assert main(["--memory", "--memory-items", "3000", "--json", str(out)]) == 0

    memory = json.loads(out.read_text())["memory"]
    assert memory["items"] == 3000
    assert {"start_mb", "peak_mb", "end_mb", "growth_mb", "samples"} <= set(memory)
    assert memory["peak_mb"] >= memory["start_mb"]


def test_profile_prints_each_contender(capsys) -> None:
    from benchmarks.hotspots import main as profile_main

    assert profile_main(["--workload", "tiny", "--items", "600", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "== hand-written loop: 600 items" in out
    assert "== padlc eval_apply: 600 items" in out


def test_cuda_runs_are_checked_against_the_gpu_targets() -> None:
    from benchmarks.report import targets

    def run(vs_limit: float, built: float) -> dict:
        return {
            "workers": 8,
            "throughput": {
                "padlc eval_apply": {"vs_limit": vs_limit, "vs_hand": 1.0},
                "built eager eval_apply": {"vs_limit": 1.0, "vs_hand": built},
            },
        }

    results = {
        "environment": {"device": "cuda"},
        "workloads": {
            "image": {"runs": [run(0.95, 1.7)], "latency": {}},
            "text": {"runs": [run(0.5, 1.0)], "latency": {}},
        },
    }
    found = {t["what"]: t["met"] for t in targets(results)}
    assert found == {
        "image, workers 8: padlc eval_apply / limit": True,
        "image, workers 8: built eager eval_apply (moved) / hand-written": False,
        "text, workers 8: padlc eval_apply / limit": False,
    }


def test_memory_mode_with_post_workers_samples_the_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    argv = ["--memory", "--memory-items", "3000", "--post-workers", "1", "--json", str(out)]
    assert main(argv) == 0
    memory = json.loads(out.read_text())["memory"]
    assert memory["items"] == 3000 and memory["post_workers"] == 1
    assert memory["workers_peak_mb"] >= memory["workers_first_mb"] > 0


def test_transport_prints_a_row_per_batch_size(capsys) -> None:
    from benchmarks import transport

    transport.main(["--batches", "3", "--repeat", "1", "--workers", "1"])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == [str(kib) for kib in transport.SIZES_KIB]
