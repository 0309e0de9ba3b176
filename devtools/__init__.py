"""Dev tooling, not part of the service: the stack's process table (processes.py), `make run`
(stack.py), PostgreSQL and Redis for `make run` / `make test` (services.py), and creating the
database (bootstrap.py). The benchmark and the chaos suite start the stack from the same table."""
