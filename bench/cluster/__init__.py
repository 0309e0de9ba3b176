"""The benchmark through the cluster (issue 27): `make bench-cluster` (QUICK=1: the quick
form), `python -m bench.cluster --mode quick|full`.

One invocation starts the cluster (devtools/cluster.py) with 1 host, then again with 3, each
time a fresh one on the same port and so the same addresses, seeds the fixtures into its
database and runs, through HAProxy, the single-host benchmark's own phases (bench/phases.py):
intake (saturation, then an open-loop schedule), end to end, and overload at 2 x and 5 x the
intake saturation. The 3-host cluster's end-to-end phase runs at the 1-host one's rate, so
CPU per paid order, kind by kind (HAProxy and PgBouncer included), is a ratio from one run.
The 1-host cluster also takes the same overload straight at its gunicorn (the Python door,
no HAProxy in front): the before and after of the load balancer's queue.

Modules: plan (the two forms), place (the cluster as the phases' stack and sampler), run
(the CLI, one cluster's phases), report (verdicts, ratios, text). Results: the text on stdout,
bench/runs/cluster-<mode>-<time>/ (the JSON, small: no profiles, no time series; each host
count's logs) and one line in bench/results/INDEX.md (bench/results_index.py).
"""
