"""``python -m benchmarks.serve``: ``padlc serve`` against the servers a user would otherwise run.

See :mod:`benchmarks.serve.__main__` for what is measured and how.
"""
