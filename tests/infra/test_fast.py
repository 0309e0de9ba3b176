"""The shared Redis client's command packer (infra.fast.CommandPacker): hiredis alone, the
same bytes as redis-py's own packer, redis-py's errors for what it refuses."""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from infra import fast
from infra.fast import CommandPacker

# redis-py's own packer, as its connections build it without hiredis
reference = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)

argument = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["EVALSHA", "GET", "CLIENT SETNAME", b"SET", b"CONFIG GET"]),
       args=st.lists(argument, max_size=25))  # fmt: skip
def test_it_writes_what_redis_py_writes(name, args) -> None:
    assert b"".join(CommandPacker().pack(name, *args)) == b"".join(reference.pack(name, *args))


@pytest.mark.parametrize("value", [memoryview(b"\x00view"), bytearray(b"array")])
def test_buffers_hiredis_refuses_are_packed_by_redis_py(value) -> None:
    assert b"".join(CommandPacker().pack("SET", "k", value)) == b"".join(
        reference.pack("SET", "k", bytes(value))
    )


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}])
def test_what_redis_py_refuses_is_refused_as_redis_py_does(value) -> None:
    with pytest.raises(redis.DataError, match="Invalid input of type"):
        CommandPacker().pack("SET", "k", value)


def test_the_shared_client_packs_with_it_and_redis_reads_every_kind_of_argument() -> None:
    client = fast.client()
    conn = client.connection_pool.get_connection()
    try:
        assert isinstance(conn._command_packer, CommandPacker)
    finally:
        client.connection_pool.release(conn)
    # when: text beyond ASCII, bytes, an int past 64 bits and floats go through a script
    got = client.eval(
        "return {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}",
        0,
        "订单-é",
        b"\x00\xffraw".decode("latin-1"),
        2**70,
        0.1 + 0.2,
        -math.inf,
    )
    # then: Redis received each as redis-py would have sent it
    assert got == ["订单-é", "\x00\xffraw", str(2**70), repr(0.1 + 0.2), "-inf"]
    # and a multi-word command still reaches the server as its words
    client.client_setname("packer-test")
    assert client.client_getname() == "packer-test"


# --- HeldScript: the hot scripts on each thread's own connection --------------------------

ECHO = "return {ARGV[1], #KEYS}"


def _held_id() -> int:
    return int(fast.held_call(("CLIENT", "ID")))


def test_a_held_script_answers_and_loads_itself_when_redis_has_lost_it() -> None:
    script = fast.HeldScript(ECHO)
    assert script(keys=["a", "b"], args=["x"]) == ["x", 2]
    # when: Redis forgets its scripts (a restart, SCRIPT FLUSH)
    fast.client().script_flush()
    # then: the next call loads it and answers, on the same held connection
    before = _held_id()
    assert script(keys=["a"], args=["y"]) == ["y", 1]
    assert _held_id() == before


def test_a_held_connection_that_breaks_is_replaced_and_the_command_sent_again() -> None:
    script = fast.HeldScript(ECHO)
    first = _held_id()
    # when: the server closes it (as a restart or a timeout on its side would)
    fast.client().client_kill_filter(_id=first)
    # then: the call still answers, on a new connection
    assert script(args=["z"]) == ["z", 0]
    assert _held_id() != first


def test_redis_out_of_reach_raises_redis_pys_error_for_the_caller_to_fail_open(
    monkeypatch,
) -> None:
    unreachable = redis.Connection(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(fast._held, "conn", (os.getpid(), unreachable), raising=False)
    with pytest.raises(redis.ConnectionError):
        fast.HeldScript(ECHO)(args=["x"])


def test_threads_racing_each_hold_their_own_connection() -> None:
    # given: threads running one script at once, each with its own arguments
    script = fast.HeldScript(ECHO)
    start = threading.Barrier(6)

    def run(t: int) -> tuple[bool, int]:
        start.wait()
        answers = [script(args=[f"{t}-{i}"]) for i in range(200)]
        return all(a == [f"{t}-{i}", 0] for i, a in enumerate(answers)), _held_id()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(6)))
    # then: every answer is the thread's own, each thread on a connection of its own
    assert all(ok for ok, _ in results)
    assert len({held for _, held in results}) == 6


def _child_held_id(out: multiprocessing.Queue) -> None:
    out.put(_held_id())


def test_a_forked_process_does_not_use_its_parents_connection() -> None:
    parent = _held_id()
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = context.Queue()
    child = context.Process(target=_child_held_id, args=(out,))
    child.start()
    child.join(timeout=10)
    assert out.get(timeout=5) != parent
    assert _held_id() == parent  # and the parent's is untouched
