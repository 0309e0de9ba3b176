"""Messages shoppers can read: every `detail` in the language of Accept-Language (English or
Simplified Chinese), the `error` code unchanged, so the chatbot can relay it as it is."""

from __future__ import annotations

import uuid
from importlib import import_module

import pytest
from django.utils import translation
from rest_framework.test import APIClient

import coupons.errors
import orders.errors
import shop.errors
from infra import errors
from infra.messages import detail_translate, details
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ProductFactory

# Every app's errors, loaded so that they are among DomainError's subclasses.
APP_ERRORS = (coupons.errors, orders.errors, shop.errors)


def domain_errors() -> list[type[errors.DomainError]]:
    found, todo = [], [errors.DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_domain_error_default_is_in_its_own_apps_catalogue() -> None:
    # each app keeps its own sentences: an error's default is in its app's messages.DETAILS
    missing = [
        e.__name__
        for e in domain_errors()
        if "default_detail" in vars(e)
        and e.default_detail not in import_module(f"{e.__module__.split('.')[0]}.messages").DETAILS
    ]
    assert missing == []


def test_the_catalogue_gathers_every_apps_sentences() -> None:
    for app in ("infra", "shop", "coupons", "orders"):
        assert set(import_module(f"{app}.messages").DETAILS) <= set(details())


def test_every_sentence_has_a_chinese_translation_compiled() -> None:
    # given: the committed .mo files, nothing compiled here
    with translation.override("zh-hans"):
        untranslated = [d for d in details() if translation.gettext(d) == d]
    assert untranslated == []


@pytest.mark.parametrize(
    ("sentence", "chinese"),
    [
        ("Only 3 of TM-TEA left.", "TM-TEA 仅剩 3 件。"),
        ("No campaign 'spring'.", "没有活动“spring”。"),
        ("The order is paid.", "订单状态为 paid。"),
        ("Something nobody wrote down.", "Something nobody wrote down."),
    ],
)
def test_sentences_with_values_keep_their_values(sentence: str, chinese: str) -> None:
    with translation.override("zh-hans"):
        assert detail_translate(sentence) == chinese
    with translation.override("en"):
        assert detail_translate(sentence) == sentence


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "detail"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.5", "{sku} 已售罄。"),
        ("zh-Hans", "{sku} 已售罄。"),
        ("en-US,en;q=0.8", "{sku} is sold out."),
        ("", "{sku} is sold out."),
        ("fr-FR", "{sku} is sold out."),
    ],
)
def test_a_refusal_speaks_the_shoppers_language(api: APIClient, accept: str, detail: str) -> None:
    # given
    gone = ProductFactory(stock=0)
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    # when
    response = api.post(
        "/api/v1/orders/",
        {"customer_id": "c-1", "items": [{"sku": gone.sku, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        **headers,
    )
    # then
    assert response.status_code == 410
    assert response.json()["error"] == "sold_out"
    assert response.json()["detail"] == detail.format(sku=gone.sku)


@pytest.mark.django_db
def test_codes_stay_english_whatever_the_language(api: APIClient) -> None:
    # given
    campaign = CampaignFactory(coupons_total=0)
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}
    # when
    sold_out = api.post(
        f"/api/v1/campaigns/{campaign.slug}/claims/",
        {"customer_id": "c-1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
        **zh,
    )
    anonymous = APIClient().get("/api/v1/orders/", **zh)
    nowhere = api.get("/api/v1/nowhere/", **zh)
    # then
    assert (sold_out.status_code, sold_out.json()["error"]) == (410, "sold_out")
    assert sold_out.json()["detail"] == "本活动的优惠券已全部发完。"
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert anonymous.json()["detail"] == "身份认证信息未提供。"  # DRF's own catalogue
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "not_found")
    assert nowhere.json()["detail"] == "没有这个接口。"
