"""`python -m bench.report bench/runs/<run>/<run>.json` (or bench/results/<run>.json)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report.files import chart
from bench.report.text import render
from bench.report.verdicts import verdicts


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report <run>.json`: print a run's report again and
    rewrite its derived parts (the targets in the JSON, the chart) from its measurements,
    which are left as they were; the re-rendering is recorded in the JSON."""
    import argparse
    import sys
    from datetime import UTC, datetime

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    res = json.loads(args.results.read_text())
    res["targets"] = [v.as_dict() for v in verdicts(res)]
    res["report_rendered_again_at"] = datetime.now(UTC).isoformat()
    args.results.write_text(json.dumps(res, indent=1, default=str) + "\n")
    chart(res, args.results.with_suffix(".png"))
    sys.stdout.write(render(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
