"""The alerting rules, the scrape config and the Grafana dashboard under deploy/ are valid, and
query only metrics that the app exports. promtool is Debian's `prometheus` package: CI installs
it (.ci/run, `make promtool`); without it these tests skip on a developer's machine and fail
under CI=true."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from prometheus_client import REGISTRY

from infra import metrics as web_metrics
from orders import metrics as pipeline_metrics
from tests.stack import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "campaign-orders.json"
# Both register their metrics when imported; the registry is then read.
METRIC_MODULES = (web_metrics, pipeline_metrics)
# Series that Prometheus makes itself, not the app.
PROMETHEUS_OWN = {"up"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        missing = "promtool is not installed (`make promtool` installs Debian's prometheus)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs it (.ci/run): never let it skip unnoticed
        pytest.skip(missing)
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
)
def test_promtool_accepts(promtool: str, args: list[str]) -> None:
    done = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported() -> set[str]:
    """Every series name the app can expose: the registered counters and histograms (this
    process, as every process registers the same), and the scrape-time gauges."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names | pipeline_metrics.StateCollector.NAMES


_NOT_NAMES = re.compile(
    r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]'  # strings, label matchers, ranges
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"  # label lists
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords or labels)."""
    bare = _NOT_NAMES.sub(" ", expr)
    tokens = re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", bare)
    return {t.group(1) for t in tokens if not t.group(2) and t.group(1) not in _KEYWORDS}


def dashboard_exprs() -> Iterator[str]:
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


def alert_exprs() -> Iterator[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


def test_the_parser_finds_names() -> None:
    expr = 'sum by (le, stage) (rate(pipeline_batch_size_bucket{stage="x"}[5m])) / up'
    assert metric_names(expr) == {"pipeline_batch_size_bucket", "up"}


def test_the_dashboard_queries_only_exported_metrics() -> None:
    # given
    exprs = list(dashboard_exprs())
    # then: it parses, has panels, and every name it reads is one the app exports
    assert len(exprs) >= 15
    used = set().union(*(metric_names(e) for e in exprs))
    assert used - exported() == set()
    assert {"http_requests_total", "orders_transitions_total", "celery_queue_messages"} <= used


def test_the_alerts_query_only_exported_metrics() -> None:
    used = set().union(*(metric_names(e) for e in alert_exprs()))
    assert used - exported() - PROMETHEUS_OWN == set()


@pytest.mark.django_db
def test_the_scrape_time_collector_yields_only_what_it_declares() -> None:
    # given: a campaign, so that every per-campaign family has a sample
    from tests.factories.coupons import CampaignFactory  # noqa: PLC0415

    CampaignFactory()
    # when
    names = {family.name for family in pipeline_metrics.StateCollector().collect()}
    # then (consumers only once a worker answered an inspect)
    assert pipeline_metrics.StateCollector.NAMES - {"celery_queue_consumers"} <= names
    assert names <= pipeline_metrics.StateCollector.NAMES
