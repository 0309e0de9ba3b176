"""Facts of the external contract (docs/integrator-guide.md, the OpenAPI schema) that
several modules check. No imports of DRF here: the authentication and throttle classes load
while DRF itself is loading."""

import re

CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CUSTOMER_ID_HELP = "The chatbot platform's id for the shopper: 1-64 of A-Z a-z 0-9 _ . : -"

# API keys: live ones are `cop_<random>`, test ones `cop_test_<random>` (docs/integrator-guide.md,
# Test mode). A live key is never minted with this prefix, and the key lookup requires the
# stored mode to agree with it, so the prefix alone tells a request's mode.
KEY_PREFIX = "cop_"
TEST_KEY_PREFIX = "cop_test_"


def key_livemode(raw_key: str) -> bool:
    """Whether a (known good) API key is a live key rather than a test key."""
    return not raw_key.startswith(TEST_KEY_PREFIX)
