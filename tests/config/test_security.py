"""Security hardening: production settings pass `check --deploy` and refuse to boot without
their secrets; the admin login locks out brute force; callbacks carry signatures a receiver
can verify with a replay window; callback URLs cannot point into our own network; an
unexpected failure answers a bare envelope, never a trace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from orders.services import signature, signature_verify
from tests import stack
from tests.factories.shop import ProductFactory

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
    "ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/campaign",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "PAYMENT_GATEWAY_URL": "https://pay.example.com",
    "PAYMENT_GATEWAY_KEY": "key",
    "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8",
}


# What production refuses, each with the override that says it is meant.
UNSAFE = {
    "debug": ({"DEBUG": "true"}, "ALLOW_DEBUG_IN_PRODUCTION"),
    "private-callbacks": (
        {"CALLBACK_ALLOW_PRIVATE": "true"},
        "ALLOW_PRIVATE_CALLBACKS_IN_PRODUCTION",
    ),
    "open-metrics": ({"METRICS_ALLOWED_NETWORKS": ""}, "ALLOW_OPEN_METRICS_IN_PRODUCTION"),
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return python("manage.py", *args, env=env)


def python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with `env` over ours, less anything PRODUCTION_ENV or UNSAFE names
    (so that the settings module and every guarded variable are the test's own)."""
    guarded = {*PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE"}
    for unsafe, override in UNSAFE.values():
        guarded |= {*unsafe, override}
    clean = {k: v for k, v in os.environ.items() if k not in guarded}
    return subprocess.run(
        [sys.executable, *args],
        cwd=stack.PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_check() -> None:
    # given / when
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    # then
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"])
def test_production_refuses_to_boot_without_its_secrets(missing: str) -> None:
    # given
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    # when
    done = manage("check", env=env)
    # then: no fallback to a default, an eager queue or another database
    assert done.returncode != 0
    assert missing in done.stderr


@pytest.mark.parametrize("entry", ["config.wsgi", "config.celery"])
def test_gunicorn_and_celery_load_production_settings_unless_told_otherwise(entry: str) -> None:
    # given: a deployment that forgot DJANGO_SETTINGS_MODULE
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = f"import {entry}; from django.conf import settings; print(settings.SETTINGS_MODULE)"
    # when
    done = python("-c", code, env=env)
    # then
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["config.settings.production"]


def test_without_its_secrets_a_forgotten_settings_module_refuses_to_serve() -> None:
    # given: no DJANGO_SETTINGS_MODULE and no SECRET_KEY
    env = {
        k: v for k, v in PRODUCTION_ENV.items() if k not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY"}
    }
    # when
    done = python("-c", "import config.wsgi", env=env)
    # then: not local's throwaway key and DEBUG
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr


def test_manage_py_keeps_local_settings_for_a_developer() -> None:
    # given / when
    done = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.SETTINGS_MODULE)",
        env={},
    )
    # then
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["config.settings.local"]


@pytest.mark.parametrize("unsafe", sorted(UNSAFE))
def test_production_refuses_a_development_convenience_unless_it_is_overridden(
    unsafe: str,
) -> None:
    # given
    setting, override = UNSAFE[unsafe]
    env = {**PRODUCTION_ENV, **setting}
    # when
    refused = manage("check", env=env)
    allowed = manage("check", env={**env, override: "true"})
    # then: one sentence saying what is wrong and which variable says it is meant
    assert refused.returncode != 0
    assert "ImproperlyConfigured: Production settings refuse to start." in refused.stderr
    assert override in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


def test_production_lists_every_convenience_it_refuses_at_once() -> None:
    # given
    env = {**PRODUCTION_ENV}
    for setting, _ in UNSAFE.values():
        env |= setting
    # when
    done = manage("check", env=env)
    # then
    assert done.returncode != 0
    assert all(override in done.stderr for _, override in UNSAFE.values())


def test_production_with_metrics_off_needs_no_allowed_networks() -> None:
    # given / when
    done = manage(
        "check", env={**PRODUCTION_ENV, "METRICS_ALLOWED_NETWORKS": "", "METRICS_ENABLED": "false"}
    )
    # then
    assert done.returncode == 0, done.stderr


@pytest.mark.django_db
@override_settings(AXES_ENABLED=True)
def test_the_admin_login_locks_out_brute_force() -> None:
    # given
    get_user_model().objects.create_superuser("boss", "boss@example.com", "right-password-1")
    browser = Client()
    # when: five wrong passwords, then the right one
    wrong = [
        browser.post("/admin/login/", {"username": "boss", "password": f"guess-{i}"})
        for i in range(5)
    ]
    right = browser.post("/admin/login/", {"username": "boss", "password": "right-password-1"})
    # then
    assert [r.status_code for r in wrong[:4]] == [200] * 4  # the form again, with an error
    assert right.status_code == 429  # locked out, even with the right password
    assert "_auth_user_id" not in browser.session


def test_a_callback_signature_verifies_and_resists_tampering_and_replay() -> None:
    # given
    secret, body, now = "whsec-1", b'{"id":"o-1","status":"paid"}', time.time()
    header = signature(secret=secret, body=body, timestamp=int(now))
    # when / then
    assert signature_verify(secret=secret, body=body, header=header, now=now)
    assert not signature_verify(secret=secret, body=body + b" ", header=header, now=now)
    assert not signature_verify(secret="other", body=body, header=header, now=now)
    assert not signature_verify(secret=secret, body=body, header=header, now=now + 301)
    assert not signature_verify(secret=secret, body=body, header="t=x,v1=zz", now=now)
    assert not signature_verify(secret=secret, body=body, header="garbage", now=now)


@pytest.mark.django_db
@override_settings(CALLBACK_ALLOW_PRIVATE=False)
@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.9/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://0.0.0.0/hook",
        "https://[::127.0.0.1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "https://[2002:c0a8:1::1]/hook",
    ],
)
def test_callback_urls_into_our_own_network_are_refused(api: APIClient, url: str) -> None:
    # given
    tea = ProductFactory()
    body = {"customer_id": "c-1", "items": [{"sku": tea.sku, "quantity": 1}], "callback_url": url}
    # when
    response = api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    # then
    assert response.status_code == 400
    assert "callback_url" in response.json()["fields"]


@pytest.mark.django_db
@override_settings(CALLBACK_ALLOW_PRIVATE=False)
def test_a_public_https_callback_url_is_accepted(api: APIClient) -> None:
    # given
    tea = ProductFactory()
    body = {
        "customer_id": "c-1",
        "items": [{"sku": tea.sku, "quantity": 1}],
        "callback_url": "https://bot.example.com/hooks/orders",
    }
    # when / then
    assert (
        api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code
        == 202
    )


@pytest.mark.django_db
def test_an_unexpected_failure_answers_a_bare_envelope(api: APIClient) -> None:
    # given: a bug deep in a service, with something secret in its message
    tea = ProductFactory()
    body = {"customer_id": "c-1", "items": [{"sku": tea.sku, "quantity": 1}]}
    # when
    with mock.patch(
        "orders.services.intake.shop_selectors.products_by_sku",
        side_effect=RuntimeError("password=hunter2 at /srv/app/secret.py"),
    ):
        response = api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    # then
    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "detail": "Something went wrong on our side.",
    }
    assert b"hunter2" not in response.content
    assert b"Traceback" not in response.content


def test_during_a_rotation_a_signature_with_either_secret_verifies() -> None:
    # given: a POST signed with the old secret and the new one (docs/integrator-guide.md, Callbacks:
    # one v1 per secret)
    body, now = b'{"id":"o-1","status":"paid"}', time.time()
    header = signature(secret="whsec-new", body=body, timestamp=int(now), previous_secret="old")
    stamp, old_entry, new_entry = header.split(",")
    # then: either secret alone verifies it, whichever entry is its own
    assert (old_entry[:3], new_entry[:3]) == ("v1=", "v1=")
    assert signature_verify(secret="old", body=body, header=header, now=now)
    assert signature_verify(secret="whsec-new", body=body, header=header, now=now)
    assert not signature_verify(secret="third", body=body, header=header, now=now)
    assert not signature_verify(secret="old", body=body + b" ", header=header, now=now)
    # and a header with no entry, or two timestamps, is refused
    assert not signature_verify(secret="old", body=body, header=stamp, now=now)
    assert not signature_verify(
        secret="old", body=body, header=f"{stamp},{stamp},{old_entry}", now=now
    )
