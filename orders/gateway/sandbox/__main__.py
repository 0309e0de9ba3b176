"""``python -m orders.gateway.sandbox``: serve the sandbox gateway until SIGTERM or SIGINT."""

from orders.gateway.sandbox.app import main

main()
