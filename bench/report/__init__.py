"""The benchmark's report: the targets with pass, fail and by how much (verdicts.py), the
tables (tables.py) and the text printed at the end of a run (text.py), the JSON written to
the run's folder in bench/runs/ and the PNG chart of rate, latency and backlog over time
(files.py). `python -m bench.report <run>.json` prints a run again (__main__.py)."""

from bench.report.files import chart, write
from bench.report.text import render
from bench.report.verdicts import R, Verdict, verdicts

__all__ = ["R", "Verdict", "chart", "render", "verdicts", "write"]
