"""Helpers for test_transactions.py: a consume-transform-produce application (confluent-kafka,
transactional producer + read_committed consumer in a group), readers that read a topic to its
end under either isolation level, and the exactly-once checks on what they saw.

The transformer does what a Kafka EOS application does (Kafka's and librdkafka's documented
pattern): begin; produce one output per input; send_offsets_to_transaction(positions, group
metadata); commit. It also aborts some transactions on purpose (a seeded choice, before or
after the offsets were added) and then rewinds the consumer to the group's committed offsets.
On errors: retriable -> call again; abortable -> abort_transaction and rewind; fatal -> a new
producer with the same transactional.id (init_transactions fences the old one and settles its
open transaction) and rewind.

Every output value is "IN_PARTITION:IN_OFFSET:ATTEMPT": which input it stands for and which
transaction attempt wrote it, so the checks can tell what a committed, an aborted and an
undecided attempt left in the output topic.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

import kafka_wire as w

COMMITTED = "committed"
ABORTED = "aborted"
UNKNOWN = "unknown"  # the producer died (fatal error) with this attempt open: either outcome is fine

# Client settings that make reconnects after a broker restart quick.
# metadata.recovery.strategy=none: librdkafka 2.16 "re-bootstraps" as soon as every known broker
# is down (a single broker SIGKILLed), decommissioning the broker handle; a decommissioned
# handle that is cached as the group coordinator makes send_offsets_to_transaction() hang past
# its timeout (confluentinc/librdkafka#5511). Without re-bootstrap the handle just reconnects.
FAST_RECONNECT = {
    "metadata.recovery.strategy": "none",
    "socket.timeout.ms": 10_000,
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 300,
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 200,
    "socket.connection.setup.timeout.ms": 3000,
    "topic.metadata.refresh.interval.ms": 2000,
}


def kerr(exc: BaseException) -> KafkaError | None:
    """The KafkaError of a confluent-kafka exception. confluent-kafka 2.16's flush()/poll() serve
    delivery and error callbacks while a fatal KafkaException is already set, so a callback that
    calls any C function makes them raise SystemError chained to that KafkaException: unwrap it.
    (Callbacks here therefore only assign attributes on their error paths.)"""
    if isinstance(exc, SystemError):
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, KafkaException):
            exc = inner
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


CLIENT_ERRORS = (KafkaException, SystemError)  # see kerr()


def describe_err(err: KafkaError) -> str:
    flags = [n for n, on in (("fatal", err.fatal()), ("retriable", err.retriable()),
                             ("abortable", err.txn_requires_abort())) if on]
    return f"{err.name()}({err.code()})[{','.join(flags)}]: {err.str()}"


# ---------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------

def preload(bootstrap: str, topic: str, n: int, partitions: int, timeout: float = 120.0) -> dict[int, int]:
    """Writes n small values "in-I" (I to partition I % partitions) with an idempotent producer;
    returns {partition: end offset}."""
    errors: list = []
    delivered = [0]

    def cb(err, msg):
        if err is None:
            delivered[0] += 1
        else:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 50,
                  "batch.num.messages": 10_000, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                  "compression.type": "lz4"})
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"in-%d" % i, partition=i % partitions, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(timeout)
    assert left == 0 and not errors, f"preload of {topic}: {left} undelivered, errors {errors[:3]}"
    assert delivered[0] == n
    ends = watermarks(bootstrap, topic, range(partitions))
    assert sum(hi for _, hi in ends.values()) == n, f"preload of {topic}: watermarks {ends}"
    return {q: hi for q, (_, hi) in ends.items()}


def watermarks(bootstrap: str, topic: str, partitions) -> dict[int, tuple[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks",
                  "isolation.level": "read_uncommitted"})
    try:
        return {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10, cached=False)
                for q in partitions}
    finally:
        c.close()


# ---------------------------------------------------------------------------
# reading a topic to its end
# ---------------------------------------------------------------------------

def stable_offsets(bootstrap: str, topic: str, partitions) -> dict[int, tuple[int, int]]:
    """{partition: (last stable offset, high watermark)} from ListOffsets v4 on the raw wire."""
    with w.Conn(bootstrap) as c:
        committed = w.list_offsets(c, topic, list(partitions), w.ISOLATION_READ_COMMITTED)
        uncommitted = w.list_offsets(c, topic, list(partitions), w.ISOLATION_READ_UNCOMMITTED)
    out = {}
    for q in partitions:
        a, b = committed[q], uncommitted[q]
        assert a["error_code"] == 0 and b["error_code"] == 0, f"ListOffsets {topic}-{q}: {a} {b}"
        out[q] = (a["offset"], b["offset"])
    return out


def wait_stable(bootstrap: str, topic: str, partitions, timeout: float) -> dict[int, int]:
    """Waits until no transaction is open on any partition (last stable offset == high
    watermark); returns the high watermarks. Fails with the last offsets seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = stable_offsets(bootstrap, topic, partitions)
        except (OSError, ConnectionError) as e:
            last = repr(e)
        if isinstance(last, dict) and all(lso == hw for lso, hw in last.values()):
            return {q: hw for q, (_, hw) in last.items()}
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: a transaction is still open after {timeout}s "
                                 f"(partition: (last stable offset, high watermark)): {last}")
        time.sleep(0.2)


@dataclass
class Read:
    isolation: str
    ends: dict[int, int]  # the offsets read up to (EOF positions)
    records: list[tuple[int, int, bytes | None, bytes | None]] = field(default_factory=list)

    def count(self, partition: int) -> int:
        return sum(1 for q, *_ in self.records if q == partition)


def read_topic(bootstrap: str, topic: str, partitions, isolation: str, ends: dict[int, int],
               timeout: float = 90.0) -> Read:
    """Assign-reads every partition from the beginning until the consumer reports EOF at or past
    ends[partition]; returns every delivered message as (partition, offset, key, value)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{isolation}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation, "fetch.max.bytes": 8 << 20,
                  "socket.timeout.ms": 10_000})
    out = Read(isolation, dict(ends))
    try:
        c.assign([TopicPartition(topic, q, OFFSET_BEGINNING) for q in partitions])
        pending = {q for q in partitions if ends[q] > 0}
        eof_at: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} ({isolation}) timed out: ends {ends}, "
                                     f"pending {sorted(pending)}, last EOF {eof_at}, "
                                     f"{len(out.records)} records")
            for m in c.consume(num_messages=5000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof_at[m.partition()] = m.offset()
                        if m.offset() >= ends[m.partition()]:
                            pending.discard(m.partition())
                        continue
                    if m.topic() == topic or err.fatal():
                        raise KafkaException(err)
                    continue
                out.records.append((m.partition(), m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


def values(read: Read, partition: int | None = None) -> list[bytes]:
    return [v for q, _, _, v in read.records if partition is None or q == partition]


# ---------------------------------------------------------------------------
# the transformer
# ---------------------------------------------------------------------------

@dataclass
class Attempt:
    id: int
    inputs: list[tuple[int, int]]  # (input partition, input offset), in produce order
    outcome: str | None = None
    how: str = ""  # why it ended as it did
    delivered: int = 0
    failed: int = 0
    last_error: KafkaError | None = None

    def partitions(self) -> set[int]:
        return {q for q, _ in self.inputs}


class Transformer(threading.Thread):
    """Consume-transform-produce from `in_topic` to `out_topic` (same partition number as the
    input) until the group's committed offsets reach `ends`. Run it with run() in the calling
    thread or start() as a thread (then check .error afterwards).

    kill_plan: [(fraction of inputs committed, phase)] where phase is "produced" (outputs
    handed to the producer, not flushed), "offsets_sent" (after send_offsets_to_transaction) or
    "committing" (just before commit_transaction). When one is due the transformer sets
    kill_request; for the first two it waits (at most 30 s) for kill_done before going on, so the
    broker dies with the transaction open at that point."""

    def __init__(self, bootstrap: str, in_topic: str, out_topic: str, group: str, txn_id: str,
                 ends: dict[int, int], *, seed, abort_ratio: float = 0.2,
                 batch: tuple[int, int] = (200, 3000), txn_timeout_ms: int = 60_000,
                 deadline_s: float = 180.0, kill_plan=None, api_timeout: float = 15.0):
        super().__init__(daemon=True, name=f"transformer-{txn_id}")
        self.bootstrap = bootstrap
        self.in_topic, self.out_topic, self.group, self.txn_id = in_topic, out_topic, group, txn_id
        self.ends = dict(ends)
        self.total = sum(ends.values())
        self.rng = random.Random(seed)
        self.abort_ratio = abort_ratio
        self.batch = batch
        self.txn_timeout_ms = txn_timeout_ms
        self.deadline_s = deadline_s
        self.api_timeout = api_timeout
        self.kill_plan = list(kill_plan or [])
        self.kill_request = threading.Event()
        self.kill_done = threading.Event()
        self.kills: list[tuple[str, float, int]] = []  # (phase, progress, attempt) of each kill
        self.current = 0  # the attempt in progress

        self.attempts: dict[int, Attempt] = {}
        self.pos: dict[int, int] = {}  # next input offset to transform, per assigned partition
        self.committed: dict[int, int] = {q: 0 for q in ends}  # the group's offsets as we know them
        self.uncertain = False  # an attempt ended UNKNOWN since the last rewind
        self.rebalanced = False
        self.events: Counter = Counter()  # errors and rewinds, by kind
        self.error_log: list[str] = []
        self.anomalies: list[str] = []
        self.producers = 0
        self.client_errors = 0  # error_cb calls (connection losses and the like)
        self.last_client_error: KafkaError | None = None
        self.producer: Producer | None = None
        self.consumer: Consumer | None = None
        self.error: BaseException | None = None
        self.error_tb = ""
        self.done = False
        self.stop = threading.Event()
        self.t_end = time.monotonic() + deadline_s

    # -- progress ---------------------------------------------------------------------------
    def progress(self) -> float:
        return sum(min(self.committed[q], self.ends[q]) for q in self.ends) / max(1, self.total)

    def finished(self) -> bool:
        return all(self.committed.get(q, 0) >= end for q, end in self.ends.items())

    def outcomes(self) -> Counter:
        return Counter(a.outcome for a in self.attempts.values())

    def summary(self) -> str:
        return (f"attempts {dict(self.outcomes())}, producers {self.producers}, kills {self.kills}, "
                f"client errors {self.client_errors} (last {self.last_client_error}), "
                f"events {dict(self.events)}, anomalies {self.anomalies[:5]}, "
                f"committed {self.committed} of {self.ends}, errors {self.error_log[:8]}")

    def _note(self, what: str, err: KafkaError | None = None) -> None:
        key = f"{what}:{err.name()}" if err is not None else what
        self.events[key] += 1
        if err is not None and len(self.error_log) < 200:
            self.error_log.append(f"{time.strftime('%H:%M:%S')} {what}: {describe_err(err)}")

    # -- clients ---------------------------------------------------------------------------
    def _producer_conf(self) -> dict:
        return {"bootstrap.servers": self.bootstrap, "transactional.id": self.txn_id,
                "transaction.timeout.ms": self.txn_timeout_ms, "linger.ms": 5,
                "batch.num.messages": 5000, "queue.buffering.max.messages": 200_000,
                "log_level": 3, **FAST_RECONNECT,
                "error_cb": self._error_cb}

    def _consumer_conf(self) -> dict:
        return {"bootstrap.servers": self.bootstrap, "group.id": self.group,
                "isolation.level": "read_committed", "enable.auto.commit": False,
                "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                "enable.partition.eof": False, "fetch.wait.max.ms": 100, "log_level": 3,
                **FAST_RECONNECT,
                "error_cb": self._error_cb}

    def _error_cb(self, err: KafkaError) -> None:
        # No calls here (see kerr()).
        self.client_errors += 1
        self.last_client_error = err

    def _retrying(self, what: str, fn, limit: float = 60.0):
        """Calls fn until it does not raise a retriable (and not abortable/fatal) error."""
        deadline = min(time.monotonic() + limit, self.t_end)
        while True:
            try:
                return fn()
            except CLIENT_ERRORS as e:
                err = kerr(e)
                if (err is None or not err.retriable() or err.fatal() or err.txn_requires_abort()
                        or time.monotonic() > deadline):
                    raise
                self._note(f"{what}-retry", err)
                time.sleep(0.1)

    def _new_producer(self) -> None:
        old, self.producer = self.producer, None
        if old is not None:
            try:
                old.purge()
            except Exception:
                pass
            del old
        for _ in range(5):
            if time.monotonic() > self.t_end:
                break
            p = Producer(self._producer_conf())
            try:
                self._retrying("init_transactions", lambda: p.init_transactions(self.api_timeout))
            except CLIENT_ERRORS as e:
                err = kerr(e)
                self._note("init_transactions-failed", err)
                if err is not None and err.fatal():
                    del p
                    continue
                if err is None:
                    raise
                raise KafkaException(err) from None
            self.producer = p
            self.producers += 1
            return
        raise AssertionError(f"no producer for {self.txn_id} (5 fatal init_transactions or past the "
                             f"deadline): {self.error_log[-5:]}")

    def _on_assign(self, consumer, partitions):
        self.rebalanced = True
        self.events["assigned"] += 1

    def _on_revoke(self, consumer, partitions):
        self.rebalanced = True
        self.events["revoked"] += 1

    def _on_lost(self, consumer, partitions):
        self.rebalanced = True
        self.events["lost"] += 1

    # -- rewinding ---------------------------------------------------------------------------
    def _rewind(self, reason: str) -> None:
        """Seek every assigned partition to the group's committed offset (what a Kafka app does
        after an abort: the aborted attempt's inputs must be transformed again)."""
        self.events[f"rewind:{reason}"] += 1
        deadline = min(time.monotonic() + 60, self.t_end)
        while True:
            assignment = self.consumer.assignment()
            if not assignment:
                self.pos = {}  # a later assignment starts at the committed offsets
                return
            try:
                got = self.consumer.committed(assignment, timeout=10)
                bad = [tp for tp in got if tp.error is not None]
                if bad:
                    raise KafkaException(bad[0].error)
                for tp in got:
                    off = tp.offset if tp.offset >= 0 else 0  # nothing committed: the beginning
                    if (not self.uncertain and off != self.committed.get(tp.partition, 0)
                            and reason != "start"):
                        self.anomalies.append(
                            f"committed offset of {tp.topic}-{tp.partition} read back as {off} but the "
                            f"last successful commit left {self.committed.get(tp.partition, 0)} "
                            f"(rewind after {reason})")
                    self.consumer.seek(TopicPartition(tp.topic, tp.partition, off))
                    self.pos[tp.partition] = off
                    self.committed[tp.partition] = off
                self.uncertain = False
                return
            except CLIENT_ERRORS as e:
                if kerr(e) is None:
                    raise
                self._note("rewind", kerr(e))
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.error_tb = traceback.format_exc()
            self.error = e.with_traceback(None)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self.consumer is not None:
                self.consumer.close()
        except Exception:
            pass
        self.consumer = None
        self.producer = None

    def _run(self) -> None:
        self.t_end = t_end = time.monotonic() + self.deadline_s
        self.consumer = Consumer(self._consumer_conf())
        self.consumer.subscribe([self.in_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._new_producer()
        next_id = 1
        while not self.finished():
            if self.stop.is_set():
                raise AssertionError("stopped")
            if time.monotonic() > t_end:
                raise AssertionError(f"transformer not done within {self.deadline_s}s: {self.summary()}")
            batch = self._consume(self.rng.randint(*self.batch))
            if batch is None or not batch:
                continue
            attempt = Attempt(next_id, [(m.partition(), m.offset()) for m in batch])
            next_id += 1
            self.attempts[attempt.id] = attempt
            self.current = attempt.id
            self._transact(attempt, batch)

    def _consume(self, n: int):
        """Up to n input records that continue exactly where self.pos says; None when the batch
        had to be thrown away (rebalance, unexpected offset) and the consumer was rewound."""
        out = []
        t_end = time.monotonic() + 0.5
        while len(out) < n and time.monotonic() < t_end:
            msgs = self.consumer.consume(num_messages=min(2000, n - len(out)), timeout=0.1)
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.fatal():
                        raise KafkaException(err)
                    self._note("consume", err)
                    continue
                out.append(m)
            if self.rebalanced or (not msgs and out):
                break
        if self.rebalanced:
            self.rebalanced = False
            self._rewind("rebalance")
            return None
        batch = []
        for m in out:
            q, off = m.partition(), m.offset()
            exp = self.pos.get(q)
            if exp is None:
                self._rewind("unpositioned")
                return None
            if off < exp:
                self.events["stale-record"] += 1
                continue
            if off > exp:
                self.anomalies.append(f"input {self.in_topic}-{q}: got offset {off}, expected {exp} "
                                      f"(a gap in a non-transactional input topic)")
                self._rewind("gap")
                return None
            batch.append(m)
            self.pos[q] = off + 1
        return batch

    def _phase(self, name: str) -> None:
        if not self.kill_plan:
            return
        frac, phase = self.kill_plan[0]
        if phase != name or self.progress() < frac:
            return
        self.kill_plan.pop(0)
        self.kills.append((phase, round(self.progress(), 3), self.current))
        self.kill_done.clear()
        self.kill_request.set()
        if phase != "committing" and not self.kill_done.wait(30):
            raise AssertionError(f"nobody killed the broker at phase {phase}")

    def _transact(self, attempt: Attempt, batch) -> None:
        p = self.producer
        stage = "begin"
        try:
            p.begin_transaction()
            stage = "produce"

            def cb(err, msg, a=attempt):  # no calls on the error path (see kerr())
                if err is None:
                    a.delivered += 1
                else:
                    a.failed += 1
                    a.last_error = err

            for m in batch:
                value = b"%d:%d:%d" % (m.partition(), m.offset(), attempt.id)
                while True:
                    try:
                        p.produce(self.out_topic, value=value, key=m.key(), partition=m.partition(),
                                  on_delivery=cb)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
            self._phase("produced")
            plan = None
            if self.rng.random() < self.abort_ratio:
                plan = self.rng.choice(["abort-before-offsets", "abort-after-offsets"])
            if plan == "abort-before-offsets":
                self._abort_on_purpose(attempt, plan)
                return
            stage = "send_offsets"
            parts = sorted(attempt.partitions())
            positions = self.consumer.position([TopicPartition(self.in_topic, q) for q in parts])
            for tp in positions:
                if tp.offset != self.pos[tp.partition]:
                    self.anomalies.append(f"consumer.position({tp.partition}) = {tp.offset}, but the "
                                          f"last record transformed was at {self.pos[tp.partition] - 1}")
            offsets = [TopicPartition(self.in_topic, q, self.pos[q]) for q in parts]
            self._retrying("send_offsets", lambda: p.send_offsets_to_transaction(
                offsets, self.consumer.consumer_group_metadata(), self.api_timeout))
            self._phase("offsets_sent")
            if plan == "abort-after-offsets":
                self._abort_on_purpose(attempt, plan)
                return
            stage = "commit"
            self._phase("committing")
            self._retrying("commit", lambda: p.commit_transaction(self.api_timeout))
            attempt.outcome, attempt.how = COMMITTED, "commit"
            for tp in offsets:
                self.committed[tp.partition] = tp.offset
        except CLIENT_ERRORS as e:
            err = kerr(e)
            if err is None:
                raise
            self._failed(attempt, stage, err)

    def _abort_on_purpose(self, attempt: Attempt, how: str) -> None:
        # Flush first so the aborted records are in the log (the read_uncommitted check needs
        # them there), then abort.
        left = self.producer.flush(self.api_timeout)
        if left:
            self._note(f"flush-before-abort-left-{left}")
        self._retrying("abort", lambda: self.producer.abort_transaction(self.api_timeout))
        attempt.outcome, attempt.how = ABORTED, how
        self._rewind(how)

    def _failed(self, attempt: Attempt, stage: str, err: KafkaError) -> None:
        self._note(f"{stage}-failed", err)
        if attempt.failed:
            self._note("delivery", attempt.last_error)
        if not err.fatal():
            try:
                self._retrying("abort", lambda: self.producer.abort_transaction(self.api_timeout))
                attempt.outcome, attempt.how = ABORTED, f"{stage} failed: {err.name()}"
                self._rewind(f"abort after {stage} error")
                return
            except CLIENT_ERRORS as e:
                err2 = kerr(e)
                self._note("abort-failed", err2)
                if err2 is None:
                    raise
        # Fatal (or the abort failed): the outcome is the coordinator's to decide. A new producer
        # with the same transactional.id settles it (init_transactions completes a commit that
        # was already decided, aborts anything else) before we read the committed offsets.
        attempt.outcome, attempt.how = UNKNOWN, f"{stage} failed: {err.name()}"
        self.uncertain = True
        self._new_producer()
        self._rewind(f"new producer after {stage} error")


def thread_stack(t: threading.Thread) -> str:
    import sys
    frame = sys._current_frames().get(t.ident)
    return "".join(traceback.format_stack(frame)) if frame is not None else "<not running>"


def join_or_fail(tr: Transformer, grace: float = 30.0) -> None:
    """Waits for the transformer thread until its deadline plus `grace`; a thread still running
    then is stuck inside a client call: fail with its stack."""
    tr.join(max(0.0, tr.t_end - time.monotonic()) + grace)
    if tr.is_alive():
        tr.stop.set()
        raise AssertionError(f"transformer stuck {grace}s past its deadline, in:\n{thread_stack(tr)}\n"
                             f"{tr.summary()}")


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------

def parse_out(value: bytes | None) -> tuple[int, int, int] | None:
    try:
        a, b, c = value.split(b":")
        return int(a), int(b), int(c)
    except Exception:
        return None


def check_exactly_once(tr: Transformer, committed_read: Read, uncommitted_read: Read,
                       exact_markers: bool) -> dict:
    """The output topic, read with read_committed, holds every input exactly once and nothing
    from an aborted attempt; an UNKNOWN attempt is all-or-nothing; every committed attempt is
    whole. With read_uncommitted: no control record is delivered as a message, no record is
    there twice (idempotence), deliberately aborted attempts (flushed before the abort) are
    physically present. exact_markers: each partition's high watermark is its data records plus
    one marker per ended transaction that wrote to it (no restarts, no undecided attempts)."""
    problems: list[str] = []
    attempts = tr.attempts

    def parse_all(read: Read):
        out = []
        for q, off, _, v in read.records:
            t = parse_out(v)
            if t is None:
                problems.append(f"{read.isolation}: undecodable message at {q}@{off}: {v!r} "
                                f"(a control record delivered as data?)")
                continue
            if t[0] != q:
                problems.append(f"{read.isolation}: input partition {t[0]} found in output partition {q}")
            out.append(t)
        return out

    rc = parse_all(committed_read)
    ru = parse_all(uncommitted_read)

    # read_committed: every input exactly once.
    per_input = Counter((ip, io) for ip, io, _ in rc)
    expected = {(q, o) for q, end in tr.ends.items() for o in range(end)}
    missing = expected - per_input.keys()
    extra = per_input.keys() - expected
    dups = {k: n for k, n in per_input.items() if n > 1}
    if missing:
        problems.append(f"{len(missing)} inputs missing from the committed output, e.g. {sorted(missing)[:5]}")
    if dups:
        problems.append(f"{len(dups)} inputs more than once in the committed output, e.g. "
                        f"{sorted(dups.items())[:5]}")
    if extra:
        problems.append(f"{len(extra)} unknown inputs in the output, e.g. {sorted(extra)[:5]}")

    by_attempt: dict[int, set] = defaultdict(set)
    for ip, io, aid in rc:
        by_attempt[aid].add((ip, io))
    visible_aborted = {aid: len(s) for aid, s in by_attempt.items()
                       if aid in attempts and attempts[aid].outcome == ABORTED}
    if visible_aborted:
        problems.append(f"records of {len(visible_aborted)} aborted attempts are visible to "
                        f"read_committed: {dict(list(visible_aborted.items())[:5])} "
                        f"({[attempts[a].how for a in list(visible_aborted)[:5]]})")
    strangers = {aid for aid in by_attempt if aid not in attempts or attempts[aid].outcome is None}
    if strangers:
        problems.append(f"committed output from attempts never ended: {sorted(strangers)[:5]}")
    for a in attempts.values():
        seen = by_attempt.get(a.id, set())
        if a.outcome == COMMITTED and seen != set(a.inputs):
            problems.append(f"committed attempt {a.id} has {len(seen)} of its {len(a.inputs)} records "
                            f"in the committed output")
        if a.outcome == UNKNOWN and seen and seen != set(a.inputs):
            problems.append(f"undecided attempt {a.id} is partly visible: {len(seen)} of "
                            f"{len(a.inputs)} records (a transaction is all or nothing)")

    # read_uncommitted: physically there, each once, no control records.
    ru_count = Counter(ru)
    ru_dups = {k: n for k, n in ru_count.items() if n > 1}
    if ru_dups:
        problems.append(f"{len(ru_dups)} output records written twice (idempotence), e.g. "
                        f"{sorted(ru_dups.items())[:5]}")
    ru_by_attempt: dict[int, set] = defaultdict(set)
    for ip, io, aid in ru:
        ru_by_attempt[aid].add((ip, io))
    aborted_flushed = [a for a in attempts.values()
                       if a.outcome == ABORTED and a.how.startswith("abort-") and a.failed == 0
                       and a.delivered == len(a.inputs)]
    absent = [a.id for a in aborted_flushed if ru_by_attempt.get(a.id, set()) != set(a.inputs)]
    if absent:
        problems.append(f"{len(absent)} aborted attempts (flushed before the abort) are not "
                        f"physically in the log for read_uncommitted: {absent[:5]}")
    if not aborted_flushed:
        problems.append("no attempt was aborted on purpose: the check that aborted records are "
                        "hidden tested nothing")
    if len(ru) <= len(rc):
        problems.append(f"read_uncommitted saw {len(ru)} records, read_committed {len(rc)}: the "
                        f"aborted records should be there for read_uncommitted")

    markers = {}
    if exact_markers:
        for q in tr.ends:
            ended = sum(1 for a in attempts.values()
                        if a.outcome in (COMMITTED, ABORTED) and q in a.partitions())
            data = uncommitted_read.count(q)
            hw = uncommitted_read.ends[q]
            markers[q] = (hw, data, ended)
            if hw != data + ended:
                problems.append(f"output partition {q}: high watermark {hw} != {data} data records + "
                                f"{ended} transaction markers")

    assert not problems, ("exactly-once violated:\n  " + "\n  ".join(problems)
                          + f"\n transformer: {tr.summary()}")
    return {"committed_records": len(rc), "uncommitted_records": len(ru),
            "aborted_on_purpose": len(aborted_flushed), "markers(hw,data,ended)": markers}


def group_offsets(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, q) for q in partitions], timeout=15)
        for tp in got:
            assert tp.error is None, f"committed offset of {topic}-{tp.partition}: {tp.error}"
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()
