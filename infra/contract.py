"""Facts of the external contract (docs/integrator-guide.md, the OpenAPI schema) that
several modules check. No imports of DRF here: the authentication and throttle classes load
while DRF itself is loading."""

import re

CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CUSTOMER_ID_HELP = "The chatbot platform's id for the shopper: 1-64 of A-Z a-z 0-9 _ . : -"
