"""The soak (`make soak`, `python -m bench.soak [--minutes 20] [--connections 4]`): the
benchmark's own stack (bench/stack.py, production-like settings, autovacuum on) offered
orders for a long while by a chatbot platform's HTTP pool: a few keep-alive connections, each
sending its next order as soon as the last is answered, statuses by callback. The sandbox
gateway answers in 20 ms and fails about 5 % of its calls; every 50th customer is declined.

Reported per minute: orders accepted, 429s, finals by status, each stage's backlog, RSS of
every process kind, the database's size, dead tuples and autovacuum runs of the pipeline's
tables, and the promised against the actual wait to final. Judged (verdicts.py): paid/s flat,
nothing expired, the promised wait within 25 % at p90, every invariant held, and the
backlog drained within a bound once the clients stop.

The long soak (`--orders N [--rate R]`, issue 30): orders offered at a fixed rate over a
pool of keep-alive connections until N were accepted (bench/load/paced.py), a progress line
each minute and a report every 5-minute window judged flat from the first 10 minutes to the
last (long.py, windows.py); the same drain, invariants, minute table and verdicts after.

Modules: __main__ (the run), long (the long soak's offer and windows), windows (a window's
figures and the flat verdicts), minutes (the per-minute table; the order side is
bench/load/minutes.py, computed in the load generator), verdicts, text (the printed report).
"""
