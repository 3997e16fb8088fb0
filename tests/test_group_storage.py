"""Group state on the storage engine: `__consumer_offsets` is compacted (it holds about as many
records as there is live state, however many commits were made), offsets survive SIGKILL and
restart after compaction, and offsets of an empty group expire after offsets.retention.minutes."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from helpers import create_topic, unique_topic, wait_until

OFFSETS = "__consumer_offsets"


def committer(bootstrap: str, group: str) -> Consumer:
    # Not subscribed: commits go in as a simple group (generation -1), like admin tools do.
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False})


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = committer(bootstrap, group)
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def offsets_log_size(bootstrap: str) -> tuple[int, int]:
    c = committer(bootstrap, "watermarks")
    try:
        return c.get_watermark_offsets(TopicPartition(OFFSETS, 0), timeout=20)
    finally:
        c.close()


def test_offsets_topic_is_compacted_and_survives_sigkill(strata_factory):
    b = strata_factory("--offsets-topic-num-partitions", "1",
                       "--offsets-compaction-records", "200")
    topic = unique_topic("gs-compact")
    create_topic(b.bootstrap, topic, partitions=3)
    c = committer(b.bootstrap, "compacted")
    commits = 3_000
    for i in range(commits):
        c.commit(offsets=[TopicPartition(topic, i % 3, i + 1)], asynchronous=False)
    c.close()
    want = {p: max(i + 1 for i in range(commits) if i % 3 == p) for p in range(3)}
    assert committed(b.bootstrap, "compacted", topic, 3) == want

    low, high = offsets_log_size(b.bootstrap)
    assert high >= commits, "every commit is a record"
    assert low > 0, "the partition was never compacted"
    # Compaction runs every 200 records written: what is left is at most that plus the live
    # state written again (3 offsets and the group), never the thousands of commits made.
    assert high - low <= 200 + 10, (low, high)

    # Loading from the compacted log after a SIGKILL gives the same offsets.
    b.restart(kill=True)
    assert committed(b.bootstrap, "compacted", topic, 3) == want
    # And the log keeps being compacted after the restart.
    c = committer(b.bootstrap, "compacted")
    for i in range(500):
        c.commit(offsets=[TopicPartition(topic, 0, commits + i)], asynchronous=False)
    c.close()
    low2, high2 = offsets_log_size(b.bootstrap)
    assert low2 > low and high2 - low2 <= 200 + 10, (low2, high2)
    assert committed(b.bootstrap, "compacted", topic, 3)[0] == commits + 499


def test_empty_group_offsets_expire(strata_factory):
    b = strata_factory("--offsets-retention-minutes", "1",
                       "--offsets-retention-check-interval-ms", "1000")
    topic = unique_topic("gs-expire")
    create_topic(b.bootstrap, topic, partitions=1)
    c = committer(b.bootstrap, "expiring")
    c.commit(offsets=[TopicPartition(topic, 0, 42)], asynchronous=False)
    c.close()
    assert committed(b.bootstrap, "expiring", topic, 1) == {0: 42}
    start = time.monotonic()
    wait_until(lambda: committed(b.bootstrap, "expiring", topic, 1)[0] < 0,
               timeout=120, interval=2, msg="the offset expired")
    # Kafka keeps a simple group's offset for the retention period after its commit.
    assert time.monotonic() - start >= 50
    # The expiry is written down: it holds after a restart.
    b.restart(kill=True)
    assert committed(b.bootstrap, "expiring", topic, 1)[0] < 0
