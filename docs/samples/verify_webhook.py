"""Verify a callback from the campaign order processor (docs/integrator-guide.md, "Callbacks").

Standard library only; copy `verify` into your receiver and call it with the raw body bytes
(before any JSON parsing) and the `X-Signature` header. It answers False, never raises, for
a header that is missing, malformed, stale or signed with another secret.

From a shell, to check a capture (exit status 0: valid, 1: refused):

    python verify_webhook.py SECRET BODY_FILE 't=1764430000,v1=5f2b...'
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time

TOLERANCE_SECONDS = 300  # refuse a timestamp further than this from our clock: a replay


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when one `v1` entry of `header` (`t=<unix>,v1=<hex>[,v1=<hex>]`, two entries while
    the secret is rotated) is the HMAC-SHA256 of "<t>.<body>" keyed with `secret`, and `t` is
    within `tolerance` seconds of `now`."""
    if not header:
        return False
    stamps: list[str] = []
    given: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            stamps.append(value)
        elif key == "v1":
            given.append(value)
    # Exactly one t, up to 15 plain ASCII digits (int() alone would take "1_0", " 10" or other
    # scripts' digits, and raise on thousands of digits), and at least one v1.
    if len(stamps) != 1 or not given:
        return False
    if not (stamps[0].isascii() and stamps[0].isdigit() and len(stamps[0]) <= 15):  # noqa: PLR2004
        return False
    stamp = int(stamps[0])
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    mac = expected.hexdigest().encode()
    # Compared as bytes (a str with non-ASCII characters makes compare_digest raise), every
    # entry compared: any one may be signed with the secret you hold.
    matches = [hmac.compare_digest(mac, value.encode()) for value in given]
    return any(matches)


def main(argv: list[str]) -> int:
    if len(argv) != 3:  # noqa: PLR2004
        sys.stderr.write("usage: verify_webhook.py SECRET BODY_FILE X_SIGNATURE\n")
        return 2
    secret, body_file, header = argv
    with open(body_file, "rb") as f:
        body = f.read()
    ok = verify(secret, body, header)
    sys.stdout.write("valid\n" if ok else "refused\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
