"""The run's files: the JSON written to the run's folder (bench/runs/<mode>-<time>/; where
they go after, bench/results_index.py) and the PNG chart of rate, latency and backlog over
time."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report.verdicts import R, verdicts


def write(res: R, directory: Path, stamp: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    res = {**res, "targets": [v.as_dict() for v in verdicts(res)]}
    base = directory / f"{res['mode']}-{stamp}"
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    png_path = base.with_suffix(".png")
    chart(res, png_path)
    return [json_path, png_path]


def chart(res: R, path: Path) -> None:
    """Rate, latency and backlog over time, one panel each, phases shaded and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = res["timeseries"]
    since = ts["since"]
    xs = list(range(len(ts["offered"])))
    fig, (rate_ax, lat_ax, back_ax) = plt.subplots(3, 1, figsize=(14, 10), sharex=True)
    rate_ax.plot(xs, ts["offered"], label="offered req/s (by scheduled time)", lw=0.8)
    rate_ax.plot(xs, ts["ok"], label="answered as promised /s", lw=0.8)
    rate_ax.plot(xs, ts["callbacks_paid"], label="paid /s (callbacks)", lw=0.8)
    rate_ax.plot(
        xs,
        [a + b for a, b in zip(ts["failed"], ts["refused_4xx"], strict=True)],
        label="4xx, 5xx, time-outs /s",
        lw=0.8,
    )
    rate_ax.set_ylabel("per second")
    rate_ax.legend(loc="upper left", fontsize=8)
    lat_ax.plot(xs, [v or float("nan") for v in ts["latency_p50_ms"]], label="p50", lw=0.8)
    lat_ax.plot(xs, [v or float("nan") for v in ts["latency_p99_ms"]], label="p99", lw=0.8)
    lat_ax.axhline(100, color="grey", ls=":", lw=0.8)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("API latency ms")
    lat_ax.legend(loc="upper left", fontsize=8)
    samples = [s for s in res["samples"] if s.get("received") is not None]
    for key, label in (
        ("received", "received (in line)"),
        ("reserved", "reserved"),
        ("callbacks_pending", "callbacks pending"),
    ):
        back_ax.plot(
            [s["t"] - since for s in samples], [s[key] for s in samples], label=label, lw=0.8
        )
    queued = [s for s in res["samples"] if s.get("accept_queue") is not None]
    queue_ax = back_ax.twinx()
    queue_ax.plot(
        [s["t"] - since for s in queued],
        [s["accept_queue"] for s in queued],
        label="gunicorn accept queue (right axis)",
        lw=0.8,
        ls="--",
        color="C3",
    )
    queue_ax.set_ylabel("connections waiting for gunicorn")
    queue_ax.legend(loc="upper right", fontsize=8)
    back_ax.set_ylabel("orders (DB)")
    back_ax.set_xlabel("seconds since start")
    back_ax.legend(loc="upper left", fontsize=8)
    for i, mark in enumerate(m for m in res["marks"] if not m["name"].startswith("drain")):
        for ax in (rate_ax, lat_ax, back_ax):
            ax.axvspan(mark["start"] - since, mark["end"] - since, color=f"C{i % 10}", alpha=0.06)
        rate_ax.annotate(
            mark["name"],
            xy=(mark["start"] - since, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=60,
            va="bottom",
        )
    fig.suptitle(f"campaign-burst benchmark, {res['mode']} mode, {res['started_at']}", y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
