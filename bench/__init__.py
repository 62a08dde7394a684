"""Benchmarks that print figures (`make bench`, i.e. `python -m bench`). Not timed tests."""
