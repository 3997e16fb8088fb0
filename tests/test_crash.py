"""kill -9 under load: every acknowledged record survives, exactly once, at its offset, in order.

A confluent-kafka producer (acks=all, idempotence off, small linger) keeps producing
sequence-numbered values to a 4-partition topic from a background thread while the broker is
SIGKILLed at a random moment 0.3-1.5 s into each round and restarted on the same data dir.

The producer runs with retries=0: then no message is ever sent twice, so the log may hold
unacknowledged messages (their fate is unknown to the client) but never one message at two
offsets. That lets the check be strict:
  * per partition, offsets are dense from 0;
  * every acknowledged value is at exactly its acknowledged (partition, offset);
  * no value appears twice anywhere; every value is in the partition it was sent to;
  * per partition, values are in produce order.
"""

from __future__ import annotations

import random
from collections import Counter
import threading
import time

import pytest
from confluent_kafka import Producer

from helpers import consume_partitions, create_topic, unique_topic

ROUNDS = 20
PARTITIONS = 4
RATE = 3000  # messages per second offered by the producer


class LoadProducer(threading.Thread):
    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True, name="load-producer")
        self.topic = topic
        self.conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "retries": 0,
            "linger.ms": 5,
            "max.in.flight.requests.per.connection": 5,
            "message.timeout.ms": 30000,
            "request.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "socket.connection.setup.timeout.ms": 3000,
            "topic.metadata.refresh.interval.ms": 2000,
            "compression.type": "lz4",
        }
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, int]] = []  # (partition, offset, seq)
        self.failed: list[tuple[int, str]] = []
        self.sent = 0
        self.error: BaseException | None = None
        self.unflushed = None

    def _cb(self, err, msg):
        seq = int(msg.value().split(b":", 1)[0])
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), seq))
            else:
                self.failed.append((seq, str(err)))

    def run(self):
        try:
            p = Producer(self.conf)
            seq = 0
            start = time.monotonic()
            while not self.stop_flag.is_set():
                # pace to RATE messages/s
                ahead = seq / RATE - (time.monotonic() - start)
                if ahead > 0:
                    p.poll(min(ahead, 0.05))
                    continue
                value = f"{seq:09d}:".encode() + b"x" * (seq % 200)
                try:
                    p.produce(self.topic, value=value, key=str(seq).encode(),
                              partition=seq % PARTITIONS, on_delivery=self._cb)
                except BufferError:
                    p.poll(0.05)
                    continue
                seq += 1
                self.sent = seq
                p.poll(0)
            self.unflushed = p.flush(60)
        except BaseException as e:  # surfaced by the test
            self.error = e

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def read_log(b, topic) -> dict[int, list[tuple[int, int]]]:
    got = consume_partitions(b.bootstrap, topic, list(range(PARTITIONS)), timeout=120)
    return {p: [(m.offset(), int(m.value().split(b":", 1)[0])) for m in msgs] for p, msgs in got.items()}


def verify(log: dict[int, list[tuple[int, int]]], acked, what: str) -> None:
    seen: dict[int, tuple[int, int]] = {}
    for p, recs in log.items():
        offsets = [o for o, _ in recs]
        if offsets != list(range(len(recs))):
            gap = next(i for i, o in enumerate(offsets) if o != i)
            raise AssertionError(f"{what}: partition {p} offsets not dense from 0: "
                                 f"index {gap} holds offset {offsets[gap]}")
        for o, seq in recs:
            assert seq % PARTITIONS == p, f"{what}: value {seq} in partition {p} (sent to {seq % PARTITIONS})"
            assert seq not in seen, f"{what}: value {seq} at {seen[seq]} and again at {(p, o)}"
            seen[seq] = (p, o)
        seqs = [s for _, s in recs]
        bad = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
        assert bad is None, f"{what}: partition {p} out of produce order at offset {bad}: " \
                            f"{seqs[bad - 1]} then {seqs[bad]}"
    missing = [(p, o, s) for p, o, s in acked if seen.get(s) != (p, o)]
    assert not missing, (f"{what}: {len(missing)} of {len(acked)} acknowledged records not at their "
                         f"acknowledged offset, e.g. (partition, offset, value, found at): "
                         f"{[(p, o, s, seen.get(s)) for p, o, s in missing[:5]]}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("wal", ["file", "object"])
def test_kill9_under_load(strata_factory, wal):
    b = strata_factory("--wal", wal, "--upload-interval-ms", 1000, name=f"crash-{wal}")
    topic = unique_topic(f"crash-{wal}")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)

    rng = random.Random(f"crash-{wal}")
    prod = LoadProducer(b.bootstrap, topic)
    prod.start()
    acks_per_round = []
    restart_times = []
    try:
        for r in range(ROUNDS):
            before = prod.acked_count()
            time.sleep(rng.uniform(0.3, 1.5))
            b.kill()
            acks_per_round.append(prod.acked_count() - before)
            t = time.monotonic()
            b.start()
            restart_times.append(time.monotonic() - t)
            assert prod.error is None, f"producer thread died: {prod.error!r}"
        time.sleep(1.0)  # let the producer reconnect and get some acks after the last restart
    finally:
        prod.stop_flag.set()
        prod.join(120)
    assert not prod.is_alive(), "producer did not finish flushing"
    assert prod.error is None, f"producer thread died: {prod.error!r}"
    assert prod.unflushed == 0, f"{prod.unflushed} messages still in flight after flush"

    acked = list(prod.acked)
    print(f"wal={wal}: sent {prod.sent}, acked {len(acked)}, failed {len(prod.failed)}, "
          f"acks per round {acks_per_round}, restart seconds "
          f"{[round(x, 2) for x in restart_times]}, failure kinds "
          f"{Counter(e for _, e in prod.failed).most_common(4)}")
    # Not vacuous: the broker took writes in most rounds and overall.
    assert len(acked) >= 5000, f"only {len(acked)} acknowledged records"
    assert sum(1 for n in acks_per_round if n > 0) >= ROUNDS // 2, \
        f"writes acknowledged in too few rounds: {acks_per_round}"
    assert len(acked) + len(prod.failed) == prod.sent, "a message got no delivery report"

    log = read_log(b, topic)
    verify(log, acked, f"wal={wal} after {ROUNDS} kill -9")

    # The same log after a graceful restart.
    b.restart()
    assert read_log(b, topic) == log, "log changed across a graceful restart"
