"""The load generator and the chatbot's callback receiver, in one asyncio process of its own.

`python -m bench.load --base-url ... --api-key ... --callback-port ...` reads one JSON command
per line on stdin and answers one JSON line on stdout (bench/loadclient.py is the other end).

Open loop: requests are scheduled at fixed spacing (1/rate) and handed to a bounded set of
connections whatever the server answers; a request waiting for a free connection keeps its
scheduled time, so its latency includes that wait (no coordinated omission). A request not
sent within the time-out of its scheduled time is counted `not_sent`; one sent but not
answered in time is `timeout`. Closed loop (the floors and saturation probes) is N
connections each sending the next request when the last is answered, like wrk; each request
opens a connection of its own. Keep-alive (the soak) is a closed loop on N connections kept
open, as a chatbot platform's HTTP pool does, honouring a 429's Retry-After (capped).

The callback receiver (aiohttp server on 127.0.0.1) records the first arrival of each
status of each order, so accept-to-paid is measured from callbacks, never by polling.
"""

from bench.load.generator import LoadGenerator

__all__ = ["LoadGenerator"]
