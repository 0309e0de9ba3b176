"""Where a run's files go, and the index of runs (docs/performance.md, "Where results go").

Every runner (bench.run, bench.chaos, bench.soak, bench.cluster) writes its JSON, chart,
profiles and logs into its own folder under bench/runs/ (ignored by git) and appends one
line to bench/results/INDEX.md: date, commit, command and the headline figures. Only a plain
full run (`make bench`: no --skip, --profile or --e2e-rate) also copies its JSON and chart
into bench/results/, replacing the previous full run's, so the repository carries the index
and the latest full run and nothing bulky.

`python -m bench.results_index FILE.json ...` appends the lines for runs written before,
or by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.report.verdicts import OUR_KINDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "bench" / "runs"
INDEX = RESULTS / "INDEX.md"
HEADER = """# Benchmark runs

One line per run, oldest first: when it started (UTC), the commit it ran on (`+` when the
tree had changes beside bench/results/, `-` where the run did not record it), how it was
started, and its headline figures. Every runner appends its line (bench/results_index.py).

Kept in this folder: this index, the latest `make bench` run's JSON and chart, and the few
runs the docs cite as current evidence (the lines marked *kept*). Every other run's files are
in `bench/runs/<run>/` on the machine that ran it (ignored by git; the runner prints a `tar`
command to share them); the files of the runs indexed when this folder was emptied
(2026-12-06, issue 28) are in git history: `git show d8c23c6:bench/results/<run>.json`.
The experiments in sub-folders kept a README each (backlog-estimate/,
front-door-busy-budget/, front-door-graded/, worker-choice/), and profiles/ held the py-spy
profiles and theirs: `git show d8c23c6:bench/results/<folder>/README.md`.

| run | started | commit | command | headline |
|---|---|---|---|---|
"""


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],  # noqa: S607 (git from PATH, as the Makefile uses it)
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def commit() -> str:
    """The short commit the tree is on, with `+` when tracked files outside bench/results/
    differ from it (the index itself changes with every run); `-` outside a git checkout."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        changed = _git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"
        )
    except (OSError, subprocess.CalledProcessError):
        return "-"
    return head + ("+" if changed else "")


def _n(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _target(res: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((t for t in res.get("targets", []) if t["name"].startswith(prefix)), None)


# A line names the targets a run missed only when they are this few; past that it counts them.
MISSED_NAMED = 2


def _met(verdicts: list[dict[str, Any]], word: str = "targets") -> str:
    judged = [v for v in verdicts if v.get("passed") is not None]
    missed = [v["name"] for v in judged if not v["passed"]]
    text = f"{len(judged) - len(missed)}/{len(judged)} {word} met"
    if not missed or len(missed) > MISSED_NAMED:
        return text
    return f"{text} (missed: {'; '.join(missed)})"


def _burst(res: dict[str, Any]) -> str:
    """bench.run: intake saturation, the main end-to-end run, CPU per paid order, p99."""
    parts = []
    if "keepalive" in res:  # runs before 2026-12-06 sent a connection per request
        n = res["keepalive"]
        parts.append(f"keep-alive pool {n}" if n else "a connection per request")
    intake = res.get("intake") or {}
    steps = (intake.get("saturation") or {}).get("steps") or []
    if steps:
        parts.append(f"intake sat. {_n(steps[0].get('accepted_per_s'))}/s")
    main = (res.get("e2e") or {}).get("main")
    if main:
        held = "flat" if main.get("sustained") else "NOT sustained"
        parts.append(f"e2e at {_n(main['rate'])}/s: paid {_n(main['paid_per_s'])}/s ({held})")
        if cpu := main.get("cpu_ms_per_paid_order"):
            ours = sum(v for k, v in cpu.items() if k in OUR_KINDS)
            parts.append(f"CPU {ours:.1f} ms/paid order")
        paid = (res.get("orders") or {}).get(main["name"], {}).get("accept_to_paid_s") or {}
        if paid.get("p99") is not None:
            parts.append(f"accept-to-paid p99 {paid['p99']:.2f} s")
    backlog = _target(res, "backlog: p90 |estimated - actual|")
    if backlog and backlog["measured"] is not None:
        parts.append(f"backlog estimate p90 error {backlog['measured']:.2f}")
    if res.get("skipped"):
        parts.append(f"skipped {','.join(res['skipped'])}")
    parts.append(_met(res.get("targets", [])))
    return "; ".join(parts)


def _chaos(res: dict[str, Any]) -> str:
    failed = [r["scenario"] for r in res["rows"] if not r["passed"]]
    text = f"{len(res['rows']) - len(failed)} passed, {len(failed)} failed in {res['seconds']} s"
    return text + (f" (failed: {', '.join(failed)})" if failed else "")


def _cluster(res: dict[str, Any]) -> str:
    cpu = (res.get("comparison") or {}).get("cpu_ms_per_paid_order_product") or []
    parts = []
    for i, c in enumerate(res["configs"]):
        sat, e2e = c["intake"]["saturation"], c["e2e"]
        text = (
            f"{c['hosts']} host(s): intake sat. {_n(sat.get('accepted_per_s'))}/s, "
            f"e2e at {_n(e2e['rate'])}/s paid {_n(e2e['paid_per_s'])}/s"
        )
        if i < len(cpu):
            text += f", CPU {_n(cpu[i], '.1f')} ms/paid order"
        parts.append(text)
    parts.append(_met(res.get("targets", [])))
    return "; ".join(parts)


def _soak(res: dict[str, Any]) -> str:
    load, settings = res.get("load") or {}, res.get("settings") or {}
    p99 = (load.get("latency_ms") or {}).get("p99")
    windows = res.get("windows")
    if windows:  # the long soak (bench/soak/long.py): its answers' latency counts from the slot
        return (
            f"{settings.get('orders', 0):,} orders at {settings.get('rate')}/s offered, "
            f"{settings.get('minutes', '-')} min, {settings.get('connections', '-')} connections: "
            f"accepted {_n(load.get('accepted_per_s'))}/s, accept-to-paid p99 "
            f"{_n(windows[0].get('to_paid_p99_s'), '.2f')} s in the first window, "
            f"{_n(windows[-1].get('to_paid_p99_s'), '.2f')} s in the last; "
            + _met(res.get("verdicts", []), "verdicts")
        )
    return (
        f"{settings.get('minutes', '-')} min, {settings.get('connections', '-')} connections: "
        f"accepted {_n(load.get('accepted_per_s'))}/s, p99 {_n(p99)} ms; "
        + _met(res.get("verdicts", []), "verdicts")
    )


def kind(res: dict[str, Any]) -> str:
    if "rows" in res and "mode_settings" in res:
        return "chaos"
    if "configs" in res:
        return "cluster"
    if res.get("mode") == "soak":
        return "soak"
    return "burst"


HEADLINES = {"burst": _burst, "chaos": _chaos, "cluster": _cluster, "soak": _soak}


def line(res: dict[str, Any], run: str, *, kept: bool = False) -> str:
    """The index's line for one run's results; `run` names it (its JSON file, no suffix)."""
    when = (res.get("started_at") or res.get("when") or "-")[:16].replace("T", " ")
    command = res.get("command") or (
        f"python -m bench.chaos --mode {res['mode']}" if kind(res) == "chaos" else "-"
    )
    name = f"{run} *kept*" if kept else run
    cells = [name, when, res.get("commit") or "-", f"`{command}`", HEADLINES[kind(res)](res)]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n"


def append(res: dict[str, Any], run: str, *, index: Path = INDEX, kept: bool = False) -> None:
    """Add a run's line at the end of the index (the table is the file's last part)."""
    index.parent.mkdir(parents=True, exist_ok=True)
    if not index.exists():
        index.write_text(HEADER)
    with index.open("a") as out:
        out.write(line(res, run, kept=kept))


def append_written(path: Path, *, index: Path = INDEX, kept: bool = False) -> None:
    """Add the line of the run whose JSON is at `path`, read back from what was written (the
    report adds its targets as it writes)."""
    append(json.loads(path.read_text()), path.stem, index=index, kept=kept)


def runs_named(index: Path = INDEX) -> set[str]:
    """The runs the index has a line for."""
    names = set()
    for row in index.read_text().splitlines():
        if row.startswith("| ") and not row.startswith(("| run ", "|---")):
            names.add(row[2:].split(" | ", 1)[0].removesuffix(" *kept*"))
    return names


def keep_latest_full(files: list[Path], *, results: Path = RESULTS) -> list[Path]:
    """Copy a plain full run's JSON and chart into bench/results/, in place of the previous
    full run's, whose index line loses its *kept* mark (the caller appends the new run's line,
    marked kept). Returns the copies."""
    index = results / INDEX.name
    for old in results.glob("full-*"):
        old.unlink()
        if index.exists():
            mark = f"| {old.stem} *kept* |"
            index.write_text(index.read_text().replace(mark, f"| {old.stem} |"))
    results.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, results / f.name)) for f in files]


def share(folder: Path, *extra: Path) -> str:
    """The command that packs a run's folder (and any folder beside it, e.g. chaos logs) into
    one tarball in the current directory."""
    parts = [f"-C {_rel(p.parent)} {p.name}" for p in (folder, *extra)]
    return f"tar czf bench-runs-{folder.name}.tgz " + " ".join(parts)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def recorded(folder: Path, *, logs: Path | None = None, kept: list[Path] | None = None) -> str:
    """What a runner prints at its end: where the files went, the index, the tarball."""
    lines = [f"files: {_rel(folder)}/ ({', '.join(sorted(p.name for p in folder.iterdir()))})"]
    if logs is not None:
        lines.append(f"logs: {_rel(logs)}/")
    if kept:
        lines.append(f"kept in the repository: {', '.join(_rel(p) for p in kept)}")
    lines.append(f"index: {_rel(INDEX)} (one line appended)")
    extra = (logs,) if logs is not None and not logs.is_relative_to(folder) else ()
    lines.append(f"to share: {share(folder, *extra)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        sys.stderr.write(__doc__ + "\n")
        return 2
    for path in paths:
        append_written(path, kept=path.resolve().parent == RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
