"""Printing the tables and the targets of issue 5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [str(first).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(rest, widths[1:])]
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _shares(entry: dict[str, Any]) -> str:
    main = entry.get("main_thread")
    if not main:
        return ""
    shares = " / ".join(f"{main[part]:.0%}" for part in ("input", "forward", "post"))
    start = entry.get("start_seconds")
    return f"{shares}, {start * 1e3:.0f} ms" if start else shares


def throughput_table(run: dict[str, Any]) -> str:
    """Items/s and ratios per contender; for the executor's runs also where the main thread's
    time went (input / forward / post, from ``BatchIterator.stats``) and how long starting its
    worker processes took, outside those shares."""
    rows = []
    for name, entry in run["throughput"].items():
        rows.append(
            [
                name,
                f"{entry['items_per_s']:,.0f}",
                _ratio(entry.get("vs_hand")),
                _ratio(entry.get("vs_limit")),
                _shares(entry),
            ]
        )
    rows.insert(3, ["limit (slowest stage alone)", f"{run['limit_items_per_s']:,.0f}", "", "", ""])
    return table(
        [
            "",
            "items/s",
            "vs hand-written",
            "vs limit",
            "main thread: input / forward / post, workers' start",
        ],
        rows,
    )


def latency_table(latency: dict[str, Any]) -> str:
    rows = [
        [
            name,
            f"{entry['p50_us']:,.0f}",
            f"{entry['p99_us']:,.0f}",
            _ratio(entry.get("p50_vs_hand")),
        ]
        for name, entry in latency.items()
    ]
    return table(["infer_apply (one item)", "p50 µs", "p99 µs", "p50 vs hand-written"], rows)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's targets for this run's device, checked against its figures (reported, not
    asserted). CPU: eval_apply >= 1.0x the hand-written loop, >= 2x PADL-style post (tiny), built
    infer_apply <= 1.1x the hand-written single item. CUDA: eval_apply >= 0.9 of the limit, and on
    the image workload a built artifact (the stage-boundary move) >= 2x the hand-written loop."""
    if str(results["environment"].get("device", "cpu")).startswith("cuda"):
        return _gpu_targets(results)
    found: list[dict[str, Any]] = []
    for name, workload in results["workloads"].items():
        for run in workload["runs"]:
            eager = run["throughput"].get("padlc eval_apply")
            if eager is not None:
                found.append(
                    _target(
                        f"{name}, workers {run['workers']}: padlc eval_apply / hand-written",
                        eager["vs_hand"],
                        ">=",
                        1.0,
                    )
                )
            padl = run["throughput"].get("PADL-style post loop")
            if eager is not None and padl is not None:
                ratio = eager["items_per_s"] / padl["items_per_s"]
                found.append(
                    _target(
                        f"{name}, workers {run['workers']}: padlc eval_apply / PADL-style post",
                        ratio,
                        ">=",
                        2.0,
                    )
                )
        for contender, entry in workload["latency"].items():
            if contender.startswith("built "):
                found.append(
                    _target(
                        f"{name}: {contender} p50 / hand-written single item",
                        entry["p50_vs_hand"],
                        "<=",
                        1.1,
                    )
                )
    return found


def _gpu_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, workload in results["workloads"].items():
        for run in workload["runs"]:
            throughput = run["throughput"]
            for row, entry in throughput.items():
                if row.startswith("padlc eval_apply"):
                    found.append(
                        _target(
                            f"{name}, workers {run['workers']}: {row} / limit",
                            entry["vs_limit"],
                            ">=",
                            0.9,
                        )
                    )
            built = {row: entry for row, entry in throughput.items() if row.startswith("built ")}
            if name == "image" and built:
                row = max(built, key=lambda r: built[r]["vs_hand"])
                found.append(
                    _target(
                        f"image, workers {run['workers']}: {row} (moved) / hand-written",
                        built[row]["vs_hand"],
                        ">=",
                        2.0,
                    )
                )
    return found


def _target(what: str, value: float, op: str, bound: float) -> dict[str, Any]:
    met = value >= bound if op == ">=" else value <= bound
    return {"what": what, "value": round(value, 3), "target": f"{op} {bound}", "met": met}


def targets_table(found: list[dict[str, Any]]) -> str:
    rows = [
        [t["what"], f"{t['value']:.2f}×", t["target"], "met" if t["met"] else "MISSED"]
        for t in found
    ]
    return table(["target (issue 5)", "measured", "target", ""], rows)


def markdown(results: dict[str, Any]) -> str:
    """The tables of a results JSON as Markdown (for docs/performance.md):
    ``python -m benchmarks.report benchmarks/results/<file>.json``."""
    out: list[str] = []
    for name, workload in results["workloads"].items():
        out.append(
            f"#### {name}: {workload['description']} ({workload['items']:,} items, batch {workload['batch_size']})\n"
        )
        runs = workload["runs"]
        header = (
            "| | "
            + " | ".join(f"workers {r['workers']}: items/s | vs hand | vs limit" for r in runs)
            + " |"
        )
        out += [header, "|---" * (1 + 3 * len(runs)) + "|"]
        names = list(runs[0]["throughput"])
        names.insert(3, "limit (slowest stage alone)")
        for row in names:
            cells = []
            for r in runs:
                if row.startswith("limit"):
                    cells += [f"{r['limit_items_per_s']:,.0f}", "", ""]
                    continue
                entry = r["throughput"][row]
                cells += [
                    f"{entry['items_per_s']:,.0f}",
                    _ratio(entry.get("vs_hand")),
                    _ratio(entry.get("vs_limit")),
                ]
            out.append(f"| {row} | " + " | ".join(cells) + " |")
        out += [
            "",
            "| infer_apply (one item) | p50 µs | p99 µs | p50 vs hand |",
            "|---|---|---|---|",
        ]
        for row, entry in workload["latency"].items():
            out.append(
                f"| {row} | {entry['p50_us']:,.0f} | {entry['p99_us']:,.0f} | {_ratio(entry['p50_vs_hand'])} |"
            )
        if workload["skipped_backends"]:
            out.append("")
            out += [
                f"- skipped `{b}`: {reason}" for b, reason in workload["skipped_backends"].items()
            ]
        out.append("")
    if results.get("targets"):
        out += ["| target (issue 5) | measured | target | |", "|---|---|---|---|"]
        out += [
            f"| {t['what']} | {t['value']:.2f}× | {t['target']} | {'met' if t['met'] else '**missed**'} |"
            for t in results["targets"]
        ]
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1]) as file:
        print(markdown(json.load(file)))
