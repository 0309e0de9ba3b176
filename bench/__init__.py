"""The campaign-burst benchmark (issue 7): `make bench-quick` / `make bench`, see README.

Modules: run (orchestration, CLI), plan (the two modes), stack (the processes), load (the
open-loop load generator and callback receiver, its own process), loadclient (talking to
it), measure (CPU, RSS, backlog and Redis sampling), seed (database set-up and bulk rows),
scale (the backlog scale probe), invariants (checks after the run), report (table, targets,
JSON, chart), results_index (where a run's files go: bench/runs/, and its line in
bench/results/INDEX.md). `floor/` is a tiny Django app whose bare endpoints and no-op task
are the in-run baselines; `settings` and `urls` add it to the project's own configuration.
"""
