"""Strata on an S3-compatible object store (moto server on loopback), WAL on the object store."""

from __future__ import annotations

import time

import pytest

from helpers import consume_partitions, create_topic, produce_all, unique_topic, wait_until

PARTITIONS = 3


def batch(tag: str, n: int):
    return [{"key": f"{tag}-k{i % 13}".encode(), "value": f"{tag}-{i:05d}".encode() * 3,
             "headers": [("tag", tag.encode())], "partition": i % PARTITIONS} for i in range(n)]


def check_log(b, topic, expected: list[tuple[int, int, bytes]]) -> None:
    """`expected`: (partition, offset, value) of everything acknowledged so far."""
    got = consume_partitions(b.bootstrap, topic, list(range(PARTITIONS)), timeout=60)
    for p in range(PARTITIONS):
        want = [(o, v) for pp, o, v in expected if pp == p]
        have = [(m.offset(), m.value()) for m in got[p]]
        assert have == want, (f"partition {p}: read {len(have)} records, expected {len(want)}; "
                              f"first difference at index "
                              f"{next((i for i, (x, y) in enumerate(zip(have, want)) if x != y), min(len(have), len(want)))}")


def produce_acked(b, topic, recs) -> list[tuple[int, int, bytes]]:
    reps = produce_all(b.bootstrap, topic, recs, timeout=60)
    failed = [r for r in reps if r.error is not None]
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:3]}"
    return [(r.partition, r.offset, r.value) for r in reps]


@pytest.mark.timeout(240)
def test_s3_object_wal_roundtrip_and_restarts(strata_factory, moto_s3):
    bucket = moto_s3.create_bucket("strata-s3-wal")
    b = strata_factory("--object-store", moto_s3.url(bucket), "--wal", "object",
                       "--upload-interval-ms", 1000, name="s3")
    topic = unique_topic("s3")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)

    expected = produce_acked(b, topic, batch("first", 3000))
    check_log(b, topic, expected)
    # With the WAL on the object store, acknowledged data is in the bucket already.
    keys = moto_s3.list_keys(bucket)
    assert keys, "no objects in the bucket after acknowledged writes with --wal object"
    assert sum(keys.values()) > 0

    # Graceful restart.
    b.restart()
    check_log(b, topic, expected)
    expected += produce_acked(b, topic, batch("second", 2000))
    check_log(b, topic, expected)

    # kill -9 right after the acks: nothing acknowledged may be lost.
    expected += produce_acked(b, topic, batch("third", 2000))
    b.restart(kill=True)
    check_log(b, topic, expected)

    # Uploads (WAL -> data objects) run every --upload-interval-ms (1 s here): give them time
    # to run (and to trim the WAL), then kill again and read everything back.
    expected += produce_acked(b, topic, batch("fourth", 2000))
    time.sleep(3)
    b.restart(kill=True)
    check_log(b, topic, expected)
    expected += produce_acked(b, topic, batch("fifth", 500))
    check_log(b, topic, expected)


@pytest.mark.timeout(180)
def test_s3_object_store_with_file_wal(strata_factory, moto_s3):
    """S3 as the object store, default file WAL: data reaches the bucket via uploads."""
    bucket = moto_s3.create_bucket("strata-s3-filewal")
    b = strata_factory("--object-store", moto_s3.url(bucket), "--upload-interval-ms", 500,
                       name="s3-filewal")
    topic = unique_topic("s3f")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    expected = produce_acked(b, topic, batch("a", 3000))
    wait_until(lambda: moto_s3.list_keys(bucket), timeout=30, msg="uploaded objects in the bucket")
    b.restart(kill=True)
    check_log(b, topic, expected)
    b.restart()
    expected += produce_acked(b, topic, batch("b", 1000))
    check_log(b, topic, expected)
