"""Kenning's benchmarks: the corpus, the quality scorer and the method adapters.

Run the pieces as modules from the repository root, e.g. ``python -m bench.corpus``.
"""
