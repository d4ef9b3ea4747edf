"""The language's own overhead against hand-written torch, on a tiny model (Linear 16→32→4).

Run: ``python benchmarks/overhead.py`` (``--items``, ``--batch-size``, ``--workers``, ``--repeat``).
Prints three ratios; the targets are infer ≤ 1.3×, eval ≥ 1.0×, creation ≤ 50 µs.
Everything is measured in this one process, side by side: the hand-written and padlc runs alternate
round by round, and each figure is its best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

import padlc
from padlc import batch, same, transform, unbatch

torch.set_num_threads(1)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    ).eval()


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_pair(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Best time of each, the two run in alternation round by round, so that a slow spell of the
    machine hits both alike (the ratio is what counts)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


class _Items(Dataset):
    def __init__(self, items: list[list[float]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(self.items[i], dtype=torch.float32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    model = make_model()
    pipeline = to_tensor >> batch >> transform(model) >> same.argmax(-1) >> unbatch >> same.item()
    generator = torch.Generator().manual_seed(0)
    items = torch.rand(args.items, 16, generator=generator).tolist()
    sample = items[0]

    # -- single item -----------------------------------------------------------------------
    def hand_infer() -> None:
        with torch.no_grad():
            for _ in range(args.calls):
                x = torch.tensor(sample, dtype=torch.float32).unsqueeze(0)
                model(x).argmax(-1).squeeze(0).item()

    def padlc_infer() -> None:
        for _ in range(args.calls):
            pipeline.infer_apply(sample)

    assert pipeline.infer_apply(sample) == model(torch.tensor([sample])).argmax(-1).item()
    hand_infer_s, padlc_infer_s = (
        t / args.calls for t in best_pair(hand_infer, padlc_infer, args.repeat)
    )

    # -- many items ------------------------------------------------------------------------
    def hand_eval() -> list[int]:
        loader = DataLoader(_Items(items), batch_size=args.batch_size, num_workers=args.workers)
        out = []
        with torch.no_grad():
            for xb in loader:
                for y in model(xb).argmax(-1):
                    out.append(y.item())
        return out

    def padlc_eval() -> list[int]:
        return list(
            pipeline.eval_apply(items, batch_size=args.batch_size, num_workers=args.workers)
        )

    assert hand_eval() == padlc_eval()
    hand_eval_s, padlc_eval_s = best_pair(hand_eval, padlc_eval, args.repeat)

    # -- creating a transform ----------------------------------------------------------------
    def f(x):
        return x

    n_create = 20000

    def create() -> None:
        for _ in range(n_create):
            transform(f)

    create_s = best(create, args.repeat) / n_create

    infer_ratio = padlc_infer_s / hand_infer_s
    eval_ratio = (args.items / padlc_eval_s) / (args.items / hand_eval_s)
    print(
        f"padlc {padlc.__version__}, torch {torch.__version__}, 1 torch thread, best of {args.repeat}"
    )
    print(
        f"infer_apply     hand-written {hand_infer_s * 1e6:8.1f} µs/call   padlc {padlc_infer_s * 1e6:8.1f} µs/call   ratio {infer_ratio:.2f}× (target ≤ 1.3×)"
    )
    print(
        f"eval_apply      hand-written {args.items / hand_eval_s:8.0f} items/s   padlc {args.items / padlc_eval_s:8.0f} items/s   ratio {eval_ratio:.2f}× (target ≥ 1.0×)  [batch {args.batch_size}, workers {args.workers}]"
    )
    print(f"create          transform(f) {create_s * 1e6:8.2f} µs (target ≤ 50 µs)")
    return {"infer_ratio": infer_ratio, "eval_ratio": eval_ratio, "create_us": create_s * 1e6}


if __name__ == "__main__":
    main()
