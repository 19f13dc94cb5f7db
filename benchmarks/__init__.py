"""Accuracy and speed benchmarks of ``ballistics`` (``python -m benchmarks``; see README.md).

The harness (:mod:`benchmarks.harness`) runs benchmark *parts*, modules exposing
``run(quick: bool = False, out_dir: Path = ...) -> dict``, records machine-stamped results under
``benchmarks/results/`` and writes the results table (:mod:`benchmarks.report`).
"""
