"""Benchmarks of Assist Panel: commands, not tests (``bench/run``; docs/performance.md)."""
