"""padlc's benchmark suite: ``python -m benchmarks`` (or ``make bench``); see docs/performance.md.

Each workload (benchmarks/image.py, text.py, tiny.py, tabular.py) is a small declarative
:class:`benchmarks.workload.Workload`; the suite derives from it the padlc pipeline, the
hand-written PyTorch loop and each stage measured alone, checks they agree, then times them side by
side in one process.
"""
