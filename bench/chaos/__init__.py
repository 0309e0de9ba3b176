"""The chaos suite: the real stack under faults, every invariant checked afterwards.
See bench/chaos/run.py, and docs/reliability.md."""
