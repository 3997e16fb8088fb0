"""Bad input: garbage, oversized/truncated frames, unknown APIs and versions, corrupt and
old-format batches, limits and invalid names. Each gets Kafka's error code or a closed
connection, never a dead or stuck broker, and a normal client keeps working afterwards."""

from __future__ import annotations

import random
import socket
import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

import kafka_wire as w
from helpers import (admin, consume_partitions, create_topic, kafka_error_code, produce_all,
                     roundtrip_ok, topic_exists, unique_topic)

MAX_FRAME = 4 * 1024 * 1024

UNSUPPORTED_VERSION = 35
CORRUPT_MESSAGE = 2
INVALID_RECORD = 87
MESSAGE_TOO_LARGE = 10
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17


@pytest.fixture(scope="module")
def b(module_strata_factory):
    return module_strata_factory("--max-frame-bytes", MAX_FRAME, name="badinput")


def healthy_conn_check(conn: w.Conn) -> None:
    """An already-open, well-behaved connection still gets answers."""
    err, apis = w.api_versions(conn, 0)
    assert err == 0 and w.API_PRODUCE in apis


def assert_still_serving(b) -> None:
    b.assert_alive()
    with w.Conn(b.bootstrap) as c:
        healthy_conn_check(c)
    roundtrip_ok(b.bootstrap)


# ---------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------

GARBAGE = {
    # First 4 bytes read as a length of ~1.2 GB: must be refused, not allocated.
    "http": b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl\r\n\r\n",
    # Correctly framed, but api_key -1 / version -1.
    "framed-ff": w.i32(16) + b"\xff" * 16,
    # Correctly framed Produce v7 header, body that cannot parse (string length 32767).
    "framed-bad-body": w.frame(w.request_header(0, 7, 1) + b"\x7f\xff"
                               + random.Random(42).randbytes(200)),
    # Well-framed requests announcing 2^31-1 array elements in a few bytes: the codec reserves
    # room for them before it finds the frame too short; the broker must survive that.
    "metadata-huge-array": w.frame(w.request_header(3, 1, 1) + w.i32(0x7FFFFFFF)),
    "produce-huge-array": w.frame(w.request_header(0, 3, 1) + w.i16(-1) + w.i16(-1)
                                  + w.i32(1000) + w.i32(0x7FFFFFFF)),
    # TLS ClientHello-like bytes to a plaintext listener.
    "tls-hello": bytes.fromhex("16030100a5010000a10303") + random.Random(7).randbytes(160),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_closes_connection(b, kind):
    with w.Conn(b.bootstrap) as healthy:
        healthy_conn_check(healthy)
        with w.Conn(b.bootstrap) as c:
            c.send_raw(GARBAGE[kind])
            assert c.closed_by_peer(10), f"broker kept the connection open after garbage {kind!r}"
        healthy_conn_check(healthy)
    assert_still_serving(b)


@pytest.mark.parametrize("size", [2**31 - 1, MAX_FRAME + 1, 256 * 1024 * 1024, -1, -(2**31)],
                         ids=["2^31-1", "max-frame+1", "256MiB", "minus-1", "int-min"])
def test_oversized_or_negative_frame_length(b, size):
    rss_before = b.rss_bytes()
    conns = []
    try:
        # Several at once: a broker that allocates the announced size would need GiBs.
        for _ in range(4):
            c = w.Conn(b.bootstrap)
            c.send_raw(w.i32(size) + b"\x00\x12\x00\x00" + b"\x00" * 100)
            conns.append(c)
        for c in conns:
            assert c.closed_by_peer(10), f"frame length {size} did not close the connection"
    finally:
        for c in conns:
            c.close()
    b.assert_alive()
    grown = b.rss_bytes() - rss_before
    assert grown < 200 * 1024 * 1024, f"broker RSS grew by {grown >> 20} MiB after frame length {size}"
    assert_still_serving(b)


def test_truncated_frames(b):
    # A frame that promises 1000 bytes, sends 50 and hangs up; many times.
    for i in range(50):
        with w.Conn(b.bootstrap) as c:
            c.send_raw(w.i32(1000) + w.request_header(18, 0, i) + b"\x00" * 30)
    # A truncated frame on a connection that stays open must not block anyone else.
    with w.Conn(b.bootstrap) as stuck:
        stuck.send_raw(w.i32(500) + w.request_header(18, 0, 1))
        with w.Conn(b.bootstrap) as other:
            healthy_conn_check(other)
        roundtrip_ok(b.bootstrap)
    # A frame cut inside the length prefix.
    with w.Conn(b.bootstrap) as c:
        c.send_raw(b"\x00\x00")
    assert_still_serving(b)


@pytest.mark.parametrize("api_key,version", [(32000, 0), (1000, 3), (3, 999), (0, 999)],
                         ids=["key-32000", "key-1000", "metadata-v999", "produce-v999"])
def test_unknown_api_or_version(b, api_key, version):
    with w.Conn(b.bootstrap) as c:
        corr = c.request(api_key, version, b"\x00" * 16)
        # Kafka closes the connection; an error response would also be acceptable.
        try:
            r = c.response(corr)
            answered = True
        except (ConnectionError, ConnectionResetError):
            answered = False
        except socket.timeout:
            pytest.fail(f"api_key={api_key} v{version}: no response and connection not closed in 10s")
        if answered:
            assert r.remaining() >= 2, "response too short to carry an error code"
    assert_still_serving(b)


# ---------------------------------------------------------------------------
# ApiVersions
# ---------------------------------------------------------------------------

def test_api_versions_supported(b):
    with w.Conn(b.bootstrap) as c:
        err0, apis0 = w.api_versions(c, 0)
        assert err0 == 0
        for key in (0, 1, 2, 3, 18, 19):  # Produce Fetch ListOffsets Metadata ApiVersions CreateTopics
            assert key in apis0, f"ApiVersions v0 does not list api key {key}: {sorted(apis0)}"
            lo, hi = apis0[key]
            assert 0 <= lo <= hi, (key, lo, hi)
        assert apis0[18][1] >= 3
        err3, apis3 = w.api_versions(c, 3)
        assert err3 == 0 and apis3 == apis0, "v0 and v3 advertise different version ranges"


def test_api_versions_unsupported_version(b):
    with w.Conn(b.bootstrap) as c:
        # What a newer client sends: a version from the future, flexible header + v3 body.
        err, apis = w.api_versions(c, 999, parse_version=0)
    assert err == UNSUPPORTED_VERSION, f"ApiVersions v999 -> error {err}, expected 35"
    # The response is in v0 layout and tells the client which ApiVersions versions exist.
    assert w.API_VERSIONS in apis, f"no ApiVersions entry in the fallback response: {apis}"
    lo, hi = apis[w.API_VERSIONS]
    assert lo == 0 and 3 <= hi < 999, (lo, hi)
    assert_still_serving(b)


# ---------------------------------------------------------------------------
# Produce validation (raw frames)
# ---------------------------------------------------------------------------

@pytest.fixture
def wire_topic(b):
    topic = unique_topic("wire")
    create_topic(b.bootstrap, topic, partitions=1)
    with w.Conn(b.bootstrap) as c:
        _, apis = w.api_versions(c, 0)
    return topic, w.pick_produce_version(apis)


def test_produce_bad_crc(b, wire_topic):
    topic, v = wire_topic
    good1 = [b"good-1", b"good-2", b"good-3"]
    good2 = [b"good-4", b"good-5"]
    with w.Conn(b.bootstrap) as c:
        r = w.produce(c, v, topic, 0, w.record_batch(good1))
        assert r["error_code"] == 0 and r["base_offset"] == 0, f"valid batch rejected: {r}"
        r = w.produce(c, v, topic, 0, w.record_batch([b"evil-1", b"evil-2"], corrupt_crc=True))
        assert r["error_code"] == CORRUPT_MESSAGE, f"bad CRC -> {r}, expected error 2"
        r = w.produce(c, v, topic, 0, w.record_batch(good2))
        assert r["error_code"] == 0 and r["base_offset"] == 3, f"after bad CRC: {r}"
    got = consume_partitions(b.bootstrap, topic, [0])[0]
    assert [(m.offset(), m.value()) for m in got] == list(enumerate(good1 + good2))
    assert_still_serving(b)


@pytest.mark.parametrize("magic", [0, 1])
def test_produce_old_message_format(b, wire_topic, magic):
    topic, v = wire_topic
    with w.Conn(b.bootstrap) as c:
        r = w.produce(c, v, topic, 0, w.legacy_message_set([b"old-1", b"old-2"], magic=magic))
        assert r["error_code"] in (INVALID_RECORD, CORRUPT_MESSAGE), \
            f"Produce v{v} with magic {magic} message set -> {r}, expected 87 or 2"
        r = w.produce(c, v, topic, 0, w.record_batch([b"new-1"]))
        assert r["error_code"] == 0 and r["base_offset"] == 0, f"after old format: {r}"
    got = consume_partitions(b.bootstrap, topic, [0])[0]
    assert [m.value() for m in got] == [b"new-1"]
    assert_still_serving(b)


def test_produce_record_batch_over_topic_max_message_bytes_wire(b):
    topic = unique_topic("maxmsg-wire")
    create_topic(b.bootstrap, topic, config={"max.message.bytes": "1024"})
    with w.Conn(b.bootstrap) as c:
        _, apis = w.api_versions(c, 0)
        v = w.pick_produce_version(apis)
        r = w.produce(c, v, topic, 0, w.record_batch([b"x" * 4096]))
        assert r["error_code"] == MESSAGE_TOO_LARGE, f"4 KiB batch, max.message.bytes=1024 -> {r}"
        r = w.produce(c, v, topic, 0, w.record_batch([b"y" * 100]))
        assert r["error_code"] == 0 and r["base_offset"] == 0, r
    assert_still_serving(b)


# ---------------------------------------------------------------------------
# Limits with a real client
# ---------------------------------------------------------------------------

def test_message_too_large_topic_config(b):
    topic = unique_topic("maxmsg")
    create_topic(b.bootstrap, topic, config={"max.message.bytes": "1024"})
    recs = [{"value": b"s" * 200}, {"value": b"L" * 4096}, {"value": b"t" * 200}]
    # The client's own limit (1 MB) allows 4 KiB: only the broker can refuse it. One produce
    # call each, so that each record is a batch of its own (Kafka refuses whole batches).
    reps = [produce_all(b.bootstrap, topic, [r], timeout=30, **{"compression.type": "none"})[0]
            for r in recs]
    assert reps[0].error is None and reps[2].error is None, reps
    assert reps[1].error is not None, "4 KiB record accepted by a topic with max.message.bytes=1024"
    assert reps[1].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, \
        f"expected MESSAGE_TOO_LARGE (10), got {reps[1].error}"
    got = consume_partitions(b.bootstrap, topic, [0])[0]
    assert [m.value() for m in got] == [recs[0]["value"], recs[2]["value"]]
    assert_still_serving(b)


def test_message_too_large_broker_default(b):
    # Broker default message.max.bytes 1048588; the client is allowed to send 4 MB.
    topic = unique_topic("maxmsg-broker")
    create_topic(b.bootstrap, topic)
    reps = produce_all(b.bootstrap, topic, [{"value": b"B" * (1536 * 1024)}], timeout=30,
                       **{"compression.type": "none", "message.max.bytes": 4_000_000})
    assert reps[0].error is not None, "1.5 MiB record accepted with message.max.bytes=1048588"
    assert reps[0].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, reps[0].error
    assert_still_serving(b)


def test_unknown_topic_with_auto_create_off(strata_factory):
    nb = strata_factory("--auto-create-topics", "false")
    topic = unique_topic("missing")
    with w.Conn(nb.bootstrap) as c:
        _, apis = w.api_versions(c, 0)
        v = w.pick_produce_version(apis)
        r = w.produce(c, v, topic, 0, w.record_batch([b"nobody"]))
        assert r["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, f"produce to missing topic -> {r}"
    # A real producer: its Metadata request asks for auto-creation; the broker must refuse.
    reps = produce_all(nb.bootstrap, topic, [{"value": b"v"}], timeout=15,
                       **{"topic.metadata.propagation.max.ms": 2000})
    assert reps[0].error is not None, "produce to a missing topic succeeded with auto-create off"
    assert reps[0].error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                    KafkaError._MSG_TIMED_OUT), reps[0].error
    assert not topic_exists(admin(nb.bootstrap), topic), \
        "topic was auto-created although --auto-create-topics false"
    roundtrip_ok(nb.bootstrap)


@pytest.mark.parametrize("name", ["bad/name", "x" * 300, "..", "with space", "ünïcode"],
                         ids=["slash", "300-chars", "dotdot", "space", "non-ascii"])
def test_invalid_topic_name(b, name):
    a = admin(b.bootstrap)  # must outlive the future
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=15)
    with pytest.raises(Exception) as ei:
        fs[name].result(20)
    assert kafka_error_code(ei.value) == INVALID_TOPIC_EXCEPTION, f"CreateTopics({name[:40]!r}) -> {ei.value!r}"
    assert not topic_exists(a, name)
    assert_still_serving(b)


def test_metadata_request_with_trailing_bytes_is_answered(b):
    """librdkafka 2.16's all-topics Metadata v13 request (AdminClient.list_topics()) carries
    bytes after the body's fields: the topics array count is left as a 4-byte zero
    placeholder, so a strict parser reads null topics + 3 fields and finds 3 bytes left over.
    Apache Kafka ignores bytes after the fields it reads and answers; so must Strata.
    The frame below is exactly what librdkafka 2.16.0 sends (captured on the wire)."""
    with w.Conn(b.bootstrap) as c:
        _, apis = w.api_versions(c, 0)
        assert w.API_METADATA in apis and apis[w.API_METADATA][1] >= 13, apis.get(w.API_METADATA)
        body = bytes.fromhex("00000000010000")
        corr = c.request(w.API_METADATA, 13, body, flexible_header=True)
        try:
            r = c.response(corr)
        except (ConnectionError, socket.timeout) as e:
            pytest.fail(f"Metadata v13 request body {body.hex()} (librdkafka list_topics) -> {e!r}; "
                        f"Kafka answers it as a request for all topics")
        r.tagged_fields()  # response header v1
        r.i32()  # throttle_time_ms
        n_brokers = r.uvarint() - 1
        assert n_brokers == 1, n_brokers
    assert_still_serving(b)
