"""`make run` (devtools/stack.py) uses the operator's gateway when one is configured, and starts
its sandbox only when none is; the banner says which is in use."""

from __future__ import annotations

from devtools import stack
from devtools.processes import QUEUES


def test_a_configured_gateway_is_used_and_no_sandbox_is_started() -> None:
    # given
    environ = {"PAYMENT_GATEWAY_URL": "https://pay.test.example/", "PAYMENT_GATEWAY_KEY": "k-1"}
    # when
    gateway = stack.gateway_in_use(environ)
    procs = stack.commands(gateway)
    # then
    assert gateway.url == "https://pay.test.example/"
    assert not gateway.sandbox
    assert "sandbox" not in procs
    assert not any("sandbox_gateway" in part for p in procs.values() for part in p.argv)
    assert "configured: https://pay.test.example/" in gateway.describe()
    assert "PAYMENT_GATEWAY_KEY set" in gateway.describe()


def test_without_a_configured_gateway_the_sandbox_is_started_and_named() -> None:
    # given / when
    gateway = stack.gateway_in_use({"PAYMENT_GATEWAY_URL": "  "})
    procs = stack.commands(gateway)
    # then
    assert gateway.sandbox
    assert gateway.url == f"http://127.0.0.1:{stack.GATEWAY_PORT}"
    assert procs["sandbox"].argv[2] == "sandbox_gateway"
    assert str(stack.GATEWAY_PORT) in procs["sandbox"].argv
    assert gateway.describe().startswith("sandbox at ")


def test_a_gateway_without_its_key_is_used_and_the_banner_says_the_key_is_missing() -> None:
    # given / when
    gateway = stack.gateway_in_use({"PAYMENT_GATEWAY_URL": "http://10.0.0.5:9000"})
    # then
    assert not gateway.sandbox
    assert "no PAYMENT_GATEWAY_KEY given" in gateway.describe()


def test_every_other_process_runs_whichever_gateway_is_used() -> None:
    # given
    configured = stack.commands(stack.gateway_in_use({"PAYMENT_GATEWAY_URL": "http://gw:1"}))
    sandboxed = stack.commands(stack.gateway_in_use({}))
    # then: gunicorn, beat and one worker per queue in both cases
    assert set(sandboxed) - set(configured) == {"sandbox"}
    assert {"gunicorn", "beat", *(f"worker-{q}" for q in QUEUES)} == set(configured)


def test_the_stack_runs_local_settings_unless_the_caller_names_others() -> None:
    # given: gunicorn and Celery would load production's settings by themselves
    gateway = stack.gateway_in_use({})
    # when
    plain = stack.environment(environ={"PATH": "/bin"}, gateway=gateway)
    named = stack.environment(environ={"DJANGO_SETTINGS_MODULE": "bench.settings"}, gateway=gateway)
    # then
    assert plain["DJANGO_SETTINGS_MODULE"] == "config.settings.local"
    assert plain["PATH"] == "/bin"
    assert plain["PAYMENT_GATEWAY_URL"] == gateway.url
    assert plain["PAYMENT_TEST_GATEWAY_URL"] == gateway.url  # test mode: the same sandbox
    assert named["DJANGO_SETTINGS_MODULE"] == "bench.settings"
