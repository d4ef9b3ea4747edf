"""A small pipeline for the serving tests, whose items can ask to fail or to take time.

An item is 4 numbers, or the same as a string ``"1,2,3,4"``. A first number of 999 makes the
preprocess raise; a negative first number makes it sleep that many seconds (-0.5: half a
second), for the tests of queueing, timeouts and draining; 998 ends the process running the
preprocess at once (a worker process dying, for the tests of --workers).
"""

from __future__ import annotations

import os
import time

import torch

from padlc import batch, transform, unbatch


@transform
def parse(item):
    values = [float(v) for v in item.split(",")] if isinstance(item, str) else item
    if values[0] == 999:
        raise ValueError("this item asks to fail")
    if values[0] == 998:
        os._exit(3)
    if values[0] < 0:
        time.sleep(-values[0])
    return torch.tensor(values, dtype=torch.float32)


@transform
def answer(scores):
    return {"label": int(scores.argmax()), "scores": scores}


def make_pipeline():
    torch.manual_seed(0)
    return parse >> batch >> transform(torch.nn.Linear(4, 3)) >> unbatch >> answer


ITEMS = [[float(i), float(i % 3), 0.5, -float(i) / 7] for i in range(40)]
