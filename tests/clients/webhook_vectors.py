"""Signature test vectors for the chatbot client (clients/python/tests/webhook_vectors.json),
made by the service's own signing code, orders.services.callbacks.signature, so that the
client's verifier is tested against exactly what the service sends (docs/integrator-guide.md,
"Callbacks"). test_python_client.py fails when the file and the service drift apart.

Regenerate: DJANGO_SETTINGS_MODULE=config.settings.test python -m tests.clients.webhook_vectors
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "clients" / "python" / "tests" / "webhook_vectors.json"

STAMP = 1_764_430_000
OLD, NEW, OTHER = "whsec-old-0123456789abcdef", "whsec-new-fedcba9876543210", "whsec-other"
BODY = json.dumps(
    {
        "id": "0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11",
        "status": "paid",
        "reason": None,
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": 2, "unit_price": 1800}],
        "subtotal": 3600,
        "discount": 2500,
        "payable": 1100,
        "currency": "CNY",
        "coupon_code": "AWSYY3YS7WWP",
        "created_at": "2026-11-29T17:00:00+00:00",
        "updated_at": "2026-11-29T17:00:01.250000+00:00",
        "queue": {"position": 0, "estimated_wait_seconds": 0},
        "note": "奶茶 — bytes beyond ASCII are signed as sent",
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode()


def build() -> list[dict[str, object]]:
    """Each vector: the body, the X-Signature the service sends, the secrets the receiver
    holds, its clock, and whether the callback must be accepted (tolerance 300 s)."""
    from orders.services.callbacks import signature  # noqa: PLC0415 (needs Django set up)

    one = signature(secret=NEW, body=BODY, timestamp=STAMP)
    rotated = signature(secret=NEW, body=BODY, timestamp=STAMP, previous_secret=OLD)
    mac = one.split("v1=", 1)[1]
    cases: list[tuple[str, str, list[str], int, bool, bytes]] = [
        ("one secret", one, [NEW], STAMP, True, BODY),
        ("rotation: the receiver holds the new secret", rotated, [NEW], STAMP, True, BODY),
        ("rotation: the receiver still holds the old secret", rotated, [OLD], STAMP, True, BODY),
        ("the receiver holds both while it rolls out", one, [OLD, NEW], STAMP, True, BODY),
        ("another secret", rotated, [OTHER], STAMP, False, BODY),
        ("the body changed", one, [NEW], STAMP, False, BODY.replace(b"1100", b"0001")),
        ("five minutes old: still in time", one, [NEW], STAMP + 300, True, BODY),
        ("older than five minutes: a replay", one, [NEW], STAMP + 301, False, BODY),
        ("more than five minutes ahead", one, [NEW], STAMP - 301, False, BODY),
        ("no v1", f"t={STAMP}", [NEW], STAMP, False, BODY),
        ("no t", f"v1={mac}", [NEW], STAMP, False, BODY),
        ("two t", f"t={STAMP},{one}", [NEW], STAMP, False, BODY),
        ("t not a number", f"t=soon,v1={mac}", [NEW], STAMP, False, BODY),
        ("a part without =", f"{one},garbage", [NEW], STAMP, False, BODY),
        ("empty", "", [NEW], STAMP, False, BODY),
        ("v1 upper case", one.upper().replace("T=", "t=").replace("V1=", "v1="), [NEW], STAMP,
         False, BODY),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "body": body.decode(),
            "header": header,
            "secrets": secrets,
            "now": now,
            "tolerance": 300,
            "valid": valid,
        }
        for name, header, secrets, now, valid, body in cases
    ]


def render(vectors: list[dict[str, object]]) -> str:
    return json.dumps(vectors, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import django

    django.setup()
    VECTORS.write_text(render(build()), encoding="utf-8")
