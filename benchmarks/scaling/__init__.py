"""``python -m benchmarks.scaling``: padl_runtime.ray's Ray Data predict against eval_apply, and its
Ray Serve deployment against ``padlc serve`` and a hand-written Ray Serve deployment."""
