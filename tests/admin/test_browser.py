"""In a real browser (headless Chromium driven by Selenium): an operator logs in, opens the
campaign page, waits for its charts to be drawn and for the page to refresh itself, takes a
screenshot (.run/test-logs/campaign-page.png), pauses the campaign and sees the status
change."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group

from backoffice import dashboard
from coupons.models import Campaign
from tests.admin.conftest import OPERATOR, build_scene, ensure_roles

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer

    from shop.models import ApiClient

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / ".run" / "test-logs" / "campaign-page.png"
WAIT_SECONDS = 30


@pytest.fixture
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        missing = "needs Debian's chromium and chromium-driver (`make browser` installs them)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs them (.ci/run): never let it skip unnoticed
        pytest.skip(missing)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    profile = tempfile.mkdtemp(prefix="chromium-test-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,2000",
    ]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_an_operator_watches_the_campaign_page_and_pauses_it(
    browser: object,
    live_server: LiveServer,
    chatbot: ApiClient,
    django_user_model: type,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    # given: a campaign with orders in every state, an operator, a page refreshing each second
    monkeypatch.setattr(dashboard, "LIVE_SECONDS", 1)
    scene = build_scene(chatbot)
    ensure_roles()
    user = django_user_model.objects.create_user(
        username="otto", password="a-long-test-password", is_staff=True
    )
    user.groups.add(Group.objects.get(name=OPERATOR))
    driver = browser
    wait = WebDriverWait(driver, WAIT_SECONDS)
    page = f"/admin/coupons/campaign/{scene.campaign.pk}/dashboard/"
    # when: the operator logs in and opens the campaign page
    driver.get(f"{live_server.url}/admin/login/?next={page}")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "username").send_keys("otto")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "password").send_keys("a-long-test-password")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart polyline")))
    wait.until(
        lambda d: int(d.find_element(By.ID, "live").get_attribute("data-refreshed") or 0) >= 1
    )
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")  # type: ignore[attr-defined]
    drawn = [c.get_attribute("data-chart") for c in charts if c.size["width"] > 100]
    status_before = driver.find_element(By.CSS_SELECTOR, "[data-figure=public-status]").text  # type: ignore[attr-defined]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))  # type: ignore[attr-defined]
    # ... and pauses the campaign, confirming on the page that asks
    driver.find_element(By.ID, "control-pause").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "confirm"))).click()
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-figure=public-status]"), "PAUSED")
    )
    # then
    assert drawn == ["recent-throughput", "recent-latency", "whole-throughput", "whole-latency"]
    assert status_before == "ACTIVE"  # shown in capitals by the stylesheet
    assert "Paused: spring." in driver.page_source  # type: ignore[attr-defined]
    assert Campaign.objects.get(pk=scene.campaign.pk).status == Campaign.Status.PAUSED
    assert SCREENSHOT.stat().st_size > 10_000
