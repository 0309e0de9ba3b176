"""The shared Redis client's command packer (infra.fast.CommandPacker): hiredis alone, the
same bytes as redis-py's own packer, redis-py's errors for what it refuses."""

from __future__ import annotations

import math

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
