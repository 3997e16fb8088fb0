"""Small client-side helpers shared by the end-to-end tests (confluent-kafka based)."""

from __future__ import annotations

import itertools
import os
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

_seq = itertools.count()


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


def wait_until(pred, timeout: float = 10.0, interval: float = 0.1, msg: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {msg} (last: {last!r})")


def admin(bootstrap: str, **conf) -> AdminClient:
    c = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    c.update(conf)
    return AdminClient(c)


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30.0) -> None:
    a = admin(bootstrap)  # must outlive the future
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=timeout)
    fs[topic].result(timeout)


def topic_exists(a: AdminClient, name: str, timeout: float = 30.0) -> bool:
    """Via DescribeTopics (a Metadata request that never auto-creates)."""
    from confluent_kafka import TopicCollection
    fut = a.describe_topics(TopicCollection([name]), request_timeout=timeout)[name]
    try:
        fut.result(timeout)
        return True
    except KafkaException as e:
        # An invalid name (INVALID_TOPIC_EXCEPTION) cannot exist either.
        if kafka_error_code(e) in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_EXCEPTION):
            return False
        raise


def kafka_error_code(exc: BaseException) -> int | None:
    """The Kafka error code inside a confluent-kafka exception (or None)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


class Delivery:
    __slots__ = ("index", "partition", "offset", "key", "value", "headers", "error", "timestamp")

    def __init__(self, index, msg, err):
        self.index = index
        self.error = err
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.headers = msg.headers()
        self.timestamp = msg.timestamp()

    def __repr__(self):
        return (f"Delivery(#{self.index} p={self.partition} o={self.offset} key={self.key!r} "
                f"err={self.error})")


def produce_all(bootstrap: str, topic: str, records, timeout: float = 60.0, **conf) -> list[Delivery]:
    """Produce `records` (dicts with value/key/headers/partition/timestamp) and return
    one delivery report per record, in produce order."""
    c = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
         "message.timeout.ms": int(timeout * 1000)}
    c.update(conf)
    p = Producer(c)
    records = list(records)
    reports: list[Delivery | None] = [None] * len(records)

    def cb_for(i):
        def cb(err, msg):
            reports[i] = Delivery(i, msg, err)
        return cb

    for i, r in enumerate(records):
        kw = {k: r[k] for k in ("key", "headers", "partition", "timestamp") if r.get(k) is not None}
        while True:
            try:
                p.produce(topic, value=r.get("value"), on_delivery=cb_for(i), **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    assert all(r is not None for r in reports), "missing delivery reports"
    return reports  # type: ignore[return-value]


def consumer(bootstrap: str, **conf) -> Consumer:
    c = {"bootstrap.servers": bootstrap, "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
         "enable.auto.commit": False, "enable.partition.eof": True,
         "auto.offset.reset": "earliest", "socket.timeout.ms": 10000}
    c.update(conf)
    return Consumer(c)


def consume_partitions(bootstrap: str, topic: str, partitions, timeout: float = 60.0,
                       start_offset=None, **conf) -> dict[int, list]:
    """Assign-read each partition from its beginning (or `start_offset`) up to the high
    watermark as of the call; returns {partition: [Message, ...]}. Fails on error or timeout."""
    from confluent_kafka import OFFSET_BEGINNING
    c = consumer(bootstrap, **conf)
    try:
        hw = {}
        for p in partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            hw[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING if start_offset is None else start_offset)
                  for p in partitions])
        out: dict[int, list] = {p: [] for p in partitions}
        pending = {p for p in partitions if hw[p] > (0 if start_offset is None else start_offset)}
        # A partition whose log start is past 0 and equals hw also has nothing to read:
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                got = {p: (len(out[p]), out[p][-1].offset() if out[p] else None) for p in pending}
                raise AssertionError(f"timed out reading {topic}: high watermarks {hw}, "
                                     f"still pending (count, last offset): {got}")
            for m in c.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if m.partition() in pending and m.offset() >= hw[m.partition()]:
                            pending.discard(m.partition())
                        continue
                    # Errors about our partitions (offset out of range, unknown topic, ...) fail
                    # the read; client-level noise (e.g. the group coordinator lookup that
                    # librdkafka does because group.id is mandatory) does not.
                    if (m.topic() == topic and m.partition() in out) or err.fatal():
                        raise KafkaException(err)
                    continue
                out[m.partition()].append(m)
                if m.offset() >= hw[m.partition()] - 1:
                    pending.discard(m.partition())
        return out
    finally:
        c.close()


def roundtrip_ok(bootstrap: str, n: int = 5) -> None:
    """A normal client can still create a topic, produce and read back."""
    topic = unique_topic("health")
    create_topic(bootstrap, topic, partitions=1)
    recs = [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(n)]
    reps = produce_all(bootstrap, topic, recs, timeout=30)
    errs = [r for r in reps if r.error is not None]
    assert not errs, f"produce after bad input failed: {errs[:3]}"
    got = consume_partitions(bootstrap, topic, [0], timeout=30)[0]
    assert [(m.key(), m.value()) for m in got] == [(r["key"], r["value"]) for r in recs]
    assert [m.offset() for m in got] == list(range(n))
