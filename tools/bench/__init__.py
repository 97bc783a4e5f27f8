"""Benchmarks that print side-by-side tables (run them; timed tests would be noise on a shared machine)."""

__all__: list[str] = []
