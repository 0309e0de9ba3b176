"""``python -m sandbox_gateway``: serve the sandbox gateway until SIGTERM or SIGINT."""

from sandbox_gateway.app import main

main()
