"""Benchmarks, run as modules: ``python -m gradsim.bench`` (the numeric layer),
``python -m gradsim.bench.ensembles`` (ensembles against single calls, the full spectrum against
``lyapynov`` and the per-step floor, large-N rates), ``python -m gradsim.bench.vs_torch``
(gradsim against PyTorch autodiff),
``python -m gradsim.bench.training`` (BPTT updates per second).

Each prints ratios measured in one run on a pinned BLAS thread count; none is a test.
"""
