"""The storage engine seen from a client: uploads to objects and cold reads, the hot tail served
from memory, retention by size and time, GC of objects nobody references, backpressure from a
full log cache, and configuration from file and environment."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition

from helpers import (admin, consume_partitions, consumer, create_topic, produce_all, unique_topic,
                     wait_until)


def metric(broker, name: str) -> float:
    """A counter or gauge from /metrics (0 when it has not been touched yet)."""
    for line in broker.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    return 0.0


def data_objects(broker) -> list:
    return sorted((broker.data_dir / "objects").rglob("*.sobj"))


def records(n: int, size: int = 200, partitions: int = 2, ts=None):
    return [{"key": f"k{i}".encode(), "value": (f"v{i}-".encode() * size)[:size],
             "partition": i % partitions, **({"timestamp": ts} if ts else {})} for i in range(n)]


def by_partition(reports):
    out: dict[int, list] = {}
    for r in reports:
        assert r.error is None, r
        out.setdefault(r.partition, []).append((r.offset, r.key, r.value))
    return out


def read_back(bootstrap, topic, partitions):
    got = consume_partitions(bootstrap, topic, partitions, timeout=60)
    return {p: [(m.offset(), m.key(), m.value()) for m in msgs] for p, msgs in got.items()}


def test_uploads_then_cold_reads_after_restart(strata_factory):
    b = strata_factory("--upload-interval-ms", "200")
    topic = unique_topic("st-cold")
    create_topic(b.bootstrap, topic, partitions=2)
    acked = by_partition(produce_all(b.bootstrap, topic, records(20_000)))
    wait_until(lambda: metric(b, "strata_objects_uploaded_total") >= 1, timeout=20, msg="an upload")
    assert data_objects(b), "no data objects in the local object store"
    b.restart()  # SIGTERM: the cache is gone, so reads must come from objects
    assert read_back(b.bootstrap, topic, [0, 1]) == acked
    assert metric(b, "strata_cold_reads_total") > 0
    assert metric(b, "strata_block_cache_fetched_bytes_total") > 0


def test_tail_consumers_are_served_from_memory(strata_factory):
    b = strata_factory("--upload-interval-ms", "200")
    topic = unique_topic("st-tail")
    create_topic(b.bootstrap, topic, partitions=1)
    c = consumer(b.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        c.consume(num_messages=1, timeout=1.0)
        sent = records(2_000, partitions=1)
        produce_all(b.bootstrap, topic, sent)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += [m for m in c.consume(num_messages=1000, timeout=0.5) if m.error() is None]
        assert [m.value() for m in got] == [r["value"] for r in sent]
    finally:
        c.close()
    assert metric(b, "strata_cold_reads_total") == 0
    assert metric(b, "strata_block_cache_fetched_bytes_total") == 0


def low_watermark(bootstrap, topic, partition=0) -> int:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[0]
    finally:
        c.close()


def test_retention_bytes_trims_whole_ranges_and_gc_deletes_objects(strata_factory):
    b = strata_factory("--upload-interval-ms", "150", "--retention-check-interval-ms", "200",
                       "--object-gc-grace-ms", "300", "--gc-interval-ms", "200")
    topic = unique_topic("st-ret-bytes")
    create_topic(b.bootstrap, topic, partitions=1, config={"retention.bytes": "30000"})
    acked = []
    for wave in range(6):  # several uploads, so several ranges to trim one at a time
        acked += by_partition(produce_all(b.bootstrap, topic, records(100, partitions=1)))[0]
        time.sleep(0.4)
    wait_until(lambda: low_watermark(b.bootstrap, topic) > 0, timeout=20, msg="retention trim")
    low = low_watermark(b.bootstrap, topic)
    assert 0 < low < len(acked)
    # Whatever is left is exactly what was produced at those offsets.
    got = consume_partitions(b.bootstrap, topic, [0], timeout=30, start_offset=low)[0]
    assert [(m.offset(), m.key(), m.value()) for m in got] == acked[low:]
    # Trimmed objects are deleted after the grace period; a deleted topic's objects too.
    wait_until(lambda: metric(b, "strata_objects_deleted_total") >= 1, timeout=20, msg="GC")
    a = admin(b.bootstrap)
    a.delete_topics([topic])[topic].result(30)
    wait_until(lambda: not data_objects(b), timeout=20, msg="all objects deleted")


def test_retention_ms_trims_old_records(strata_factory):
    b = strata_factory("--upload-interval-ms", "150", "--retention-check-interval-ms", "200")
    topic = unique_topic("st-ret-ms")
    create_topic(b.bootstrap, topic, partitions=1, config={"retention.ms": "600000"})
    hour_ago = int(time.time() * 1000) - 3_600_000
    old = by_partition(produce_all(b.bootstrap, topic, records(50, partitions=1, ts=hour_ago)))[0]
    time.sleep(0.5)  # the old records are uploaded in their own range
    new = by_partition(produce_all(b.bootstrap, topic, records(50, partitions=1)))[0]
    wait_until(lambda: low_watermark(b.bootstrap, topic) == len(old), timeout=20,
               msg="old records trimmed")
    got = consume_partitions(b.bootstrap, topic, [0], timeout=30, start_offset=len(old))[0]
    assert [(m.offset(), m.key(), m.value()) for m in got] == new


def test_full_log_cache_holds_producers_back_and_loses_nothing(strata_factory):
    # Uploads are far apart, so only the full cache can force them.
    b = strata_factory("--log-cache-bytes", "1000000", "--upload-interval-ms", "600000")
    topic = unique_topic("st-backpressure")
    create_topic(b.bootstrap, topic, partitions=2)
    acked = by_partition(produce_all(b.bootstrap, topic, records(6_000, size=1000)))
    assert sum(len(v) for v in acked.values()) == 6_000
    assert metric(b, "strata_append_backpressure_total") > 0
    assert metric(b, "strata_objects_uploaded_total") >= 1
    assert read_back(b.bootstrap, topic, [0, 1]) == acked


def test_settings_from_file_and_environment(strata_factory, tmp_path):
    conf = tmp_path / "strata.toml"
    conf.write_text('num_partitions = 2\nauto_create_topics = true\n')
    b = strata_factory("--config", str(conf))
    topic = unique_topic("st-conf")
    produce_all(b.bootstrap, topic, [{"value": b"x"}])  # auto-created with the file's default
    md = admin(b.bootstrap).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 2
    b.stop()
    # The environment wins over the file.
    e = strata_factory("--config", str(conf), env={"STRATA_NUM_PARTITIONS": "3"})
    topic = unique_topic("st-env")
    produce_all(e.bootstrap, topic, [{"value": b"x"}])
    md = admin(e.bootstrap).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 3
