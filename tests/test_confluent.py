"""confluent-kafka (librdkafka 2.x): produce/consume and the admin API."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (IsolationLevel, KafkaError, TopicCollection, TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, OffsetSpec, ResourceType)

from helpers import (admin, consume_partitions, consumer, create_topic, kafka_error_code,
                     produce_all, topic_exists, unique_topic, wait_until)

T = 30  # seconds for admin futures

KAFKA_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "max.message.bytes": "1048588",
    "segment.bytes": "1073741824",
    "message.timestamp.type": "CreateTime",
}


def result_error(fut) -> int | None:
    """Kafka error code of a failed admin future, None if it succeeded."""
    try:
        fut.result(T)
        return None
    except Exception as e:  # noqa: BLE001
        code = kafka_error_code(e)
        assert code is not None, f"unexpected exception type: {e!r}"
        return code


def describe(a, topic) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([res], request_timeout=T)[res].result(T)


def source(entry) -> ConfigSource:
    return ConfigSource(entry.source)




# ---------------------------------------------------------------------------
# produce / consume
# ---------------------------------------------------------------------------

def test_produce_acks_all_consume_exactly_once_in_order(broker):
    topic = unique_topic("cf-rt")
    create_topic(broker.bootstrap, topic, partitions=3)
    now = int(time.time() * 1000)
    recs = []
    for i in range(6000):
        r = {"key": f"user-{i % 101}".encode(), "value": f"{i:05d}:".encode() + bytes([i % 256]) * (i % 300),
             "headers": [("seq", str(i).encode()), ("kind", b"even" if i % 2 == 0 else b"odd")]}
        if i % 7 == 0:
            r["partition"] = 2
        if i % 5 == 0:
            r["timestamp"] = now - 3_600_000 + i
        recs.append(r)
    # A few edge cases: null key, null value, empty value, header with null value, all bytes.
    recs += [{"key": None, "value": b"null-key", "partition": 0},
             {"key": b"null-value", "value": None, "partition": 1},
             {"key": b"empty-value", "value": b"", "partition": 1},
             {"key": b"hdr-null", "value": b"x", "headers": [("n", None)], "partition": 0},
             {"key": bytes(range(256)), "value": bytes(range(255, -1, -1)), "partition": 2}]

    reps = produce_all(broker.bootstrap, topic, recs, **{"enable.idempotence": False,
                                                         "max.in.flight": 1})
    failed = [r for r in reps if r.error is not None]
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:3]}"

    # Offsets in delivery reports: dense per partition, increasing in produce order.
    per_part: dict[int, list] = {}
    for r in reps:
        per_part.setdefault(r.partition, []).append(r)
    assert set(per_part) == {0, 1, 2}
    for p, rs in per_part.items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {p}: acked offsets not dense"

    got = consume_partitions(broker.bootstrap, topic, [0, 1, 2])
    for p, rs in per_part.items():
        msgs = got[p]
        assert len(msgs) == len(rs), f"partition {p}: read {len(msgs)}, acked {len(rs)}"
        for r, m in zip(rs, msgs):
            rec = recs[r.index]
            assert m.offset() == r.offset
            assert m.key() == rec.get("key"), (p, m.offset())
            assert m.value() == rec.get("value"), (p, m.offset())
            assert (m.headers() or []) == (rec.get("headers") or []), (p, m.offset(), m.headers())
            if "timestamp" in rec:
                assert m.timestamp()[1] == rec["timestamp"], (p, m.offset(), m.timestamp())


def test_consume_from_middle_and_end(broker):
    topic = unique_topic("cf-seek")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_all(broker.bootstrap, topic, [{"value": f"m{i}".encode()} for i in range(500)])
    got = consume_partitions(broker.bootstrap, topic, [0], start_offset=321)[0]
    assert [m.offset() for m in got] == list(range(321, 500))
    assert [m.value() for m in got] == [f"m{i}".encode() for i in range(321, 500)]
    c = consumer(broker.bootstrap)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert (lo, hi) == (0, 500)
    finally:
        c.close()


def test_log_append_time(broker):
    topic = unique_topic("cf-lat")
    create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    old = int(time.time() * 1000) - 86_400_000
    before = int(time.time() * 1000)
    reps = produce_all(broker.bootstrap, topic, [{"value": b"a", "timestamp": old}])
    after = int(time.time() * 1000)
    assert reps[0].error is None
    m = consume_partitions(broker.bootstrap, topic, [0])[0][0]
    ts_type, ts = m.timestamp()
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
    assert before - 5000 <= ts <= after + 5000, (ts, before, after)


# ---------------------------------------------------------------------------
# topics
# ---------------------------------------------------------------------------

def test_create_topics(broker):
    a = admin(broker.bootstrap)
    t_val, t_cfg = unique_topic("cf-validate"), unique_topic("cf-cfg")

    fs = a.create_topics([NewTopic(t_val, num_partitions=2, replication_factor=1)],
                         validate_only=True, request_timeout=T)
    assert result_error(fs[t_val]) is None
    time.sleep(0.5)
    assert not topic_exists(a, t_val), "validate_only created the topic"

    cfg = {"retention.ms": "123456", "cleanup.policy": "compact", "max.message.bytes": "65536"}
    fs = a.create_topics([NewTopic(t_cfg, num_partitions=4, replication_factor=1, config=cfg)],
                         request_timeout=T)
    assert result_error(fs[t_cfg]) is None
    md = wait_until(lambda: a.list_topics(topic=t_cfg, timeout=10).topics.get(t_cfg), msg="topic listed")
    assert md.error is None and sorted(md.partitions) == [0, 1, 2, 3]
    entries = describe(a, t_cfg)
    for k, v in cfg.items():
        assert entries[k].value == v, (k, entries[k].value)
        assert source(entries[k]) == ConfigSource.DYNAMIC_TOPIC_CONFIG, (k, entries[k].source)

    # Errors, each with Kafka's code.
    cases = {
        t_cfg: (NewTopic(t_cfg, 1, 1), KafkaError.TOPIC_ALREADY_EXISTS),
        unique_topic("cf-zero"): (None, KafkaError.INVALID_PARTITIONS),
        unique_topic("cf-rf3"): (None, KafkaError.INVALID_REPLICATION_FACTOR),
        unique_topic("cf-badcfg"): (None, KafkaError.INVALID_CONFIG),
        unique_topic("cf-unkcfg"): (None, KafkaError.INVALID_CONFIG),
    }
    names = list(cases)
    new = [
        cases[names[0]][0],
        NewTopic(names[1], num_partitions=0, replication_factor=1),
        NewTopic(names[2], num_partitions=1, replication_factor=3),
        NewTopic(names[3], num_partitions=1, replication_factor=1, config={"cleanup.policy": "bogus"}),
        NewTopic(names[4], num_partitions=1, replication_factor=1, config={"no.such.config": "1"}),
    ]
    wrong = []
    for nt in new:
        fs = a.create_topics([nt], request_timeout=T)
        want = cases[nt.topic][1]
        got = result_error(fs[nt.topic])
        if got != want:
            wrong.append(f"CreateTopics({nt.topic}, partitions={nt.num_partitions}, "
                         f"rf={nt.replication_factor}, config={nt.config}) -> {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
    for n in names[1:]:
        assert not topic_exists(a, n), f"failed CreateTopics left topic {n} behind"


def test_describe_topics(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-desc")
    create_topic(broker.bootstrap, topic, partitions=3)
    d = a.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(T)
    assert d.name == topic and not d.is_internal
    assert str(d.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), f"null topic id {d.topic_id}"
    assert [p.id for p in d.partitions] == [0, 1, 2]
    broker_ids = {b.id for b in a.list_topics(topic=topic, timeout=10).brokers.values()}
    for p in d.partitions:
        assert p.leader is not None and p.leader.id in broker_ids, p
        assert [r.id for r in p.replicas] == [p.leader.id] and [r.id for r in p.isr] == [p.leader.id]

    missing = unique_topic("cf-nope")
    assert result_error(a.describe_topics(TopicCollection([missing]), request_timeout=T)[missing]) \
        == KafkaError.UNKNOWN_TOPIC_OR_PART

    md = a.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is None and sorted(md.topics[topic].partitions) == [0, 1, 2]


def test_list_all_topics(broker):
    """AdminClient.list_topics(): librdkafka's all-topics Metadata request."""
    a = admin(broker.bootstrap)
    topics = [unique_topic("cf-list") for _ in range(3)]
    for i, t in enumerate(topics):
        create_topic(broker.bootstrap, t, partitions=i + 1)
    md = a.list_topics(timeout=10)
    for i, t in enumerate(topics):
        assert t in md.topics, f"{t} missing from list_topics()"
        assert sorted(md.topics[t].partitions) == list(range(i + 1))
    assert len(md.brokers) == 1
    (b,) = md.brokers.values()
    assert (b.host, b.port) == ("127.0.0.1", broker.port)


def test_create_partitions(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-parts")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_all(broker.bootstrap, topic, [{"value": b"p0-a"}])

    fs = a.create_partitions([NewPartitions(topic, 3)], validate_only=True, request_timeout=T)
    assert result_error(fs[topic]) is None
    assert len(a.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 1

    fs = a.create_partitions([NewPartitions(topic, 3)], request_timeout=T)
    assert result_error(fs[topic]) is None
    wait_until(lambda: len(a.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 3,
               msg="3 partitions in metadata")
    reps = produce_all(broker.bootstrap, topic, [{"value": b"p2-a", "partition": 2},
                                                 {"value": b"p1-a", "partition": 1}])
    assert [(r.error, r.partition, r.offset) for r in reps] == [(None, 2, 0), (None, 1, 0)]
    got = consume_partitions(broker.bootstrap, topic, [0, 1, 2])
    assert {p: [m.value() for m in ms] for p, ms in got.items()} == \
        {0: [b"p0-a"], 1: [b"p1-a"], 2: [b"p2-a"]}

    for total, want in ((2, KafkaError.INVALID_PARTITIONS), (3, KafkaError.INVALID_PARTITIONS)):
        fs = a.create_partitions([NewPartitions(topic, total)], request_timeout=T)
        assert result_error(fs[topic]) == want, f"create_partitions({total}) on 3 partitions"
    missing = unique_topic("cf-nope")
    fs = a.create_partitions([NewPartitions(missing, 2)], request_timeout=T)
    assert result_error(fs[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_topics(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-del")
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_all(broker.bootstrap, topic, [{"value": f"old-{i}".encode(), "partition": i % 2}
                                          for i in range(20)])
    fs = a.delete_topics([topic], operation_timeout=T, request_timeout=T)
    assert result_error(fs[topic]) is None
    wait_until(lambda: not topic_exists(a, topic), msg="deleted topic gone from metadata")
    fs = a.delete_topics([topic], request_timeout=T)
    assert result_error(fs[topic]) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # Same name again: a brand-new, empty topic; old data must not come back.
    create_topic(broker.bootstrap, topic, partitions=1)
    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 0)
    finally:
        c.close()
    reps = produce_all(broker.bootstrap, topic, [{"value": b"new"}])
    assert (reps[0].error, reps[0].offset) == (None, 0)
    got = consume_partitions(broker.bootstrap, topic, [0])[0]
    assert [m.value() for m in got] == [b"new"]


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------

def test_describe_configs_defaults(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-defaults")
    create_topic(broker.bootstrap, topic)
    entries = describe(a, topic)
    for k, v in KAFKA_TOPIC_DEFAULTS.items():
        assert k in entries, f"describe_configs lacks {k}"
        assert entries[k].value == v, f"{k} = {entries[k].value!r}, Kafka's default is {v!r}"
        assert source(entries[k]) != ConfigSource.DYNAMIC_TOPIC_CONFIG, (k, entries[k].source)
    missing = unique_topic("cf-nope")
    res = ConfigResource(ResourceType.TOPIC, missing)
    assert result_error(a.describe_configs([res], request_timeout=T)[res]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def _incr(a, topic, ops, validate_only=False):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops])
    return result_error(a.incremental_alter_configs([res], validate_only=validate_only,
                                                    request_timeout=T)[res])


def test_incremental_alter_configs(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-incr")
    create_topic(broker.bootstrap, topic)
    SET, DELETE, APPEND, SUBTRACT = (AlterConfigOpType.SET, AlterConfigOpType.DELETE,
                                     AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT)
    new = {"retention.ms": "3600000", "retention.bytes": "10485760", "max.message.bytes": "2048",
           "cleanup.policy": "compact", "segment.bytes": "16777216"}

    assert _incr(a, topic, [(k, v, SET) for k, v in new.items()], validate_only=True) is None
    e = describe(a, topic)
    assert {k: e[k].value for k in new} == {k: KAFKA_TOPIC_DEFAULTS[k] for k in new}, \
        "validate_only changed configs"

    assert _incr(a, topic, [(k, v, SET) for k, v in new.items()]) is None
    e = describe(a, topic)
    for k, v in new.items():
        assert e[k].value == v, (k, e[k].value)
        assert source(e[k]) == ConfigSource.DYNAMIC_TOPIC_CONFIG, (k, e[k].source)

    # The new max.message.bytes is enforced (one batch per record: Kafka refuses whole batches).
    reps = [produce_all(broker.bootstrap, topic, [r], **{"compression.type": "none"})[0]
            for r in ({"value": b"a" * 100}, {"value": b"b" * 4000})]
    assert reps[0].error is None
    assert reps[1].error is not None and reps[1].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, reps[1].error

    assert _incr(a, topic, [("retention.ms", None, DELETE)]) is None
    e = describe(a, topic)
    assert e["retention.ms"].value == KAFKA_TOPIC_DEFAULTS["retention.ms"]
    assert source(e["retention.ms"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert e["retention.bytes"].value == new["retention.bytes"], "DELETE of one key touched another"

    assert _incr(a, topic, [("cleanup.policy", "delete", APPEND)]) is None
    assert describe(a, topic)["cleanup.policy"].value == "compact,delete"
    assert _incr(a, topic, [("cleanup.policy", "compact", SUBTRACT)]) is None
    assert describe(a, topic)["cleanup.policy"].value == "delete"

    for ops, what in (([("retention.ms", "abc", SET)], "non-numeric retention.ms"),
                      ([("cleanup.policy", "bogus", SET)], "bad cleanup.policy"),
                      ([("no.such.config", "1", SET)], "unknown config"),
                      ([("retention.ms", "1000", APPEND)], "APPEND on a non-list config")):
        assert _incr(a, topic, ops) == KafkaError.INVALID_CONFIG, what
    e = describe(a, topic)
    assert e["retention.bytes"].value == new["retention.bytes"], "a refused alter changed configs"
    missing = unique_topic("cf-nope")
    assert _incr(a, missing, [("retention.ms", "1", SET)]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_alter_configs_replaces_all(broker):
    a = admin(broker.bootstrap)
    topic = unique_topic("cf-alter")
    create_topic(broker.bootstrap, topic, config={"retention.bytes": "999999"})

    res = ConfigResource(ResourceType.TOPIC, topic,
                         set_config={"retention.ms": "7200000", "max.message.bytes": "4096"})
    assert result_error(a.alter_configs([res], request_timeout=T)[res]) is None
    e = describe(a, topic)
    assert e["retention.ms"].value == "7200000" and e["max.message.bytes"].value == "4096"
    # Legacy AlterConfigs replaces the whole set: the create-time override is gone.
    assert e["retention.bytes"].value == KAFKA_TOPIC_DEFAULTS["retention.bytes"], e["retention.bytes"].value
    assert source(e["retention.bytes"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG

    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "-5"})
    assert result_error(a.alter_configs([res], request_timeout=T)[res]) == KafkaError.INVALID_CONFIG
    assert describe(a, topic)["retention.ms"].value == "7200000"


# ---------------------------------------------------------------------------
# offsets
# ---------------------------------------------------------------------------

def _offsets_topic(broker):
    """Partition 0: 10 records, timestamps t0 + i s except record 6 (the maximum, t0 + 100 s);
    records 0-4 in one batch, 5-9 in batches of their own. Partition 1: 5 records."""
    topic = unique_topic("cf-offsets")
    create_topic(broker.bootstrap, topic, partitions=2)
    t0 = int(time.time() * 1000) - 600_000
    ts = [t0 + i * 1000 for i in range(10)]
    ts[6] = t0 + 100_000
    reps = produce_all(broker.bootstrap, topic, [{"value": f"r{i}".encode(), "timestamp": ts[i],
                                                  "partition": 0} for i in range(5)])
    for i in range(5, 10):
        reps += produce_all(broker.bootstrap, topic, [{"value": f"r{i}".encode(), "timestamp": ts[i],
                                                       "partition": 0}])
    reps += produce_all(broker.bootstrap, topic, [{"value": f"q{i}".encode(), "partition": 1}
                                                  for i in range(5)])
    assert all(r.error is None for r in reps)
    return topic, t0, ts


def _list_offset(a, tp, spec):
    r = a.list_offsets({tp: spec}, isolation_level=IsolationLevel.READ_UNCOMMITTED,
                       request_timeout=T)[tp].result(T)
    return r.offset, r.timestamp


def test_list_offsets(broker):
    a = admin(broker.bootstrap)
    topic, t0, ts = _offsets_topic(broker)
    tp0 = TopicPartition(topic, 0)

    def lo(spec):
        return _list_offset(a, tp0, spec)

    assert lo(OffsetSpec.earliest())[0] == 0
    assert lo(OffsetSpec.latest())[0] == 10
    assert lo(OffsetSpec.max_timestamp()) == (6, t0 + 100_000)
    for target, want in ((t0 - 5000, 0), (t0, 0), (t0 + 2500, 3), (t0 + 4000, 4), (t0 + 5000, 5),
                         (t0 + 5500, 6), (t0 + 100_000, 6)):
        got = lo(OffsetSpec.for_timestamp(target))
        assert got[0] == want, f"for_timestamp(t0+{target - t0}) -> {got}, expected offset {want}"
        assert got[1] == ts[want], f"for_timestamp(t0+{target - t0}) timestamp {got[1]} != {ts[want]}"
    assert lo(OffsetSpec.for_timestamp(t0 + 100_001))[0] == -1

    c = consumer(broker.bootstrap)
    try:
        found = c.offsets_for_times([TopicPartition(topic, 0, t0 + 2500)], timeout=10)
        assert found[0].offset == 3 and found[0].error is None, found
    finally:
        c.close()


def test_delete_records(broker):
    a = admin(broker.bootstrap)
    topic, t0, ts = _offsets_topic(broker)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    def lo(spec, tp=tp0):
        return _list_offset(a, tp, spec)

    # The log start moves; reads start there.
    dr = a.delete_records([TopicPartition(topic, 0, 4)], request_timeout=T, operation_timeout=T)
    (fut,) = dr.values()
    assert fut.result(T).low_watermark == 4
    assert lo(OffsetSpec.earliest())[0] == 4
    assert lo(OffsetSpec.latest())[0] == 10
    got = consume_partitions(broker.bootstrap, topic, [0])[0]
    assert [(m.offset(), m.value()) for m in got] == [(i, f"r{i}".encode()) for i in range(4, 10)]
    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(tp0, timeout=10, cached=False) == (4, 10)
    finally:
        c.close()

    # Up to the high watermark (-1), and past it (error).
    dr = a.delete_records([TopicPartition(topic, 1, -1)], request_timeout=T, operation_timeout=T)
    (fut,) = dr.values()
    assert fut.result(T).low_watermark == 5
    assert lo(OffsetSpec.earliest(), tp1)[0] == 5 and lo(OffsetSpec.latest(), tp1)[0] == 5
    dr = a.delete_records([TopicPartition(topic, 0, 11)], request_timeout=T, operation_timeout=T)
    (fut,) = dr.values()
    assert result_error(fut) == KafkaError.OFFSET_OUT_OF_RANGE
    assert lo(OffsetSpec.earliest())[0] == 4

    # Timestamp lookups never answer with a deleted offset (Kafka searches from the log start).
    got = lo(OffsetSpec.for_timestamp(t0))
    assert got == (4, ts[4]), f"for_timestamp(t0) after DeleteRecords(4) -> {got}, expected (4, {ts[4]})"
