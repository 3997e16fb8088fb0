"""kafka-python (pure Python client): producer/consumer round trip and the admin client."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import (InvalidConfigurationError, InvalidPartitionsError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError)

from helpers import unique_topic, wait_until

DYNAMIC_TOPIC_CONFIG = 1


def admin_client(b) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="e2e-kafka-python",
                            request_timeout_ms=30000)


@pytest.fixture
def kadmin(broker):
    a = admin_client(broker)
    yield a
    a.close()


def read_all(b, topic, partitions, expected: dict[int, int], timeout=60.0):
    """assign + seek_to_beginning, no group; returns {partition: [ConsumerRecord]}."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", client_id="e2e-kafka-python-consumer")
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while any(len(out[p]) < expected.get(p, 0) for p in partitions):
            assert time.monotonic() < deadline, \
                f"timed out: read { {p: len(v) for p, v in out.items()} }, expected {expected}"
            for tp, recs in c.poll(timeout_ms=500).items():
                out[tp.partition].extend(recs)
        # Nothing beyond what was expected shows up.
        for tp, recs in c.poll(timeout_ms=1000).items():
            out[tp.partition].extend(recs)
        end = c.end_offsets(tps)
        assert {tp.partition: o for tp, o in end.items()} == {p: expected.get(p, 0) for p in partitions}
        return out
    finally:
        c.close()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_producer_consumer_roundtrip(broker, kadmin, compression):
    topic = unique_topic("kp-rt")
    kadmin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    wait_until(lambda: topic in kadmin.list_topics(), msg="topic listed")

    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5,
                      compression_type=compression, client_id="e2e-kafka-python-producer")
    sent = []
    try:
        futures = []
        for i in range(3000):
            key = f"k{i % 17}".encode()
            value = f"value-{i}".encode() * (1 + i % 5)
            headers = [("i", str(i).encode()), ("src", b"kafka-python")]
            part = i % 2
            futures.append((p.send(topic, key=key, value=value, headers=headers, partition=part),
                            (part, key, value, headers)))
        p.flush(60)
        for fut, rec in futures:
            md = fut.get(timeout=60)
            assert md.topic == topic and md.partition == rec[0]
            sent.append((md.partition, md.offset) + rec[1:])
    finally:
        p.close(10)

    expected = {}
    for part, off, *_ in sent:
        expected[part] = expected.get(part, 0) + 1
    for part in (0, 1):
        offs = [off for pp, off, *_ in sent if pp == part]
        assert offs == list(range(len(offs))), f"partition {part}: acked offsets not dense/in order"

    got = read_all(broker, topic, [0, 1], expected)
    for part in (0, 1):
        want = [(off, k, v, h) for pp, off, k, v, h in sent if pp == part]
        have = [(r.offset, r.key, r.value, list(r.headers)) for r in got[part]]
        assert have == want, f"partition {part}: first mismatch at " \
                             f"{next((i for i, (x, y) in enumerate(zip(have, want)) if x != y), None)}"


def describe_topic_configs(a, topic) -> dict[str, tuple[str, int]]:
    resp = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    out = {}
    for r in resp:
        for res in r.resources:
            err, msg, rtype, rname, entries = res[0], res[1], res[2], res[3], res[4]
            assert err == 0, f"DescribeConfigs {rname}: error {err} {msg}"
            assert rname == topic
            for e in entries:
                out[e[0]] = (e[1], e[3])  # value, config_source (v1+)
    return out


def test_admin_topics_and_configs(broker, kadmin):
    topic = unique_topic("kp-admin")
    kadmin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                   topic_configs={"retention.ms": "86400000"})])
    wait_until(lambda: topic in kadmin.list_topics(), msg="topic listed")

    with pytest.raises(TopicAlreadyExistsError):
        kadmin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])

    (desc,) = kadmin.describe_topics([topic])
    assert desc["error_code"] == 0 and desc["topic"] == topic
    assert sorted(p["partition"] for p in desc["partitions"]) == [0, 1]
    assert all(p["leader"] >= 0 and p["replicas"] == [p["leader"]] for p in desc["partitions"])

    cfg = describe_topic_configs(kadmin, topic)
    assert cfg["retention.ms"][0] == "86400000"
    assert cfg["cleanup.policy"][0] == "delete"
    assert cfg["retention.ms"][1] == DYNAMIC_TOPIC_CONFIG, cfg["retention.ms"]
    assert cfg["cleanup.policy"][1] != DYNAMIC_TOPIC_CONFIG, cfg["cleanup.policy"]

    resp = kadmin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                configs={"retention.ms": "1800000",
                                                         "cleanup.policy": "compact"})])
    assert [res[0] for res in resp.resources] == [0], resp
    cfg = describe_topic_configs(kadmin, topic)
    assert cfg["retention.ms"][0] == "1800000" and cfg["cleanup.policy"][0] == "compact"

    resp = kadmin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                configs={"retention.ms": "not-a-number"})])
    assert [res[0] for res in resp.resources] == [InvalidConfigurationError.errno], resp
    assert describe_topic_configs(kadmin, topic)["retention.ms"][0] == "1800000"

    kadmin.create_partitions({topic: NewPartitions(total_count=4)})
    wait_until(lambda: len(kadmin.describe_topics([topic])[0]["partitions"]) == 4, msg="4 partitions")
    with pytest.raises(InvalidPartitionsError):
        kadmin.create_partitions({topic: NewPartitions(total_count=2)})

    kadmin.delete_topics([topic])
    wait_until(lambda: topic not in kadmin.list_topics(), msg="topic deleted")
    with pytest.raises(UnknownTopicOrPartitionError):
        kadmin.delete_topics([topic])
