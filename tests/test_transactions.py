"""Kafka transactions (KIP-98, with KIP-890's server-side produce verification): exactly-once
consume-transform-produce, fencing, timeouts, read_committed reads, and the transaction APIs on
the raw wire.

With confluent-kafka (librdkafka's transactional producer and a read_committed consumer in a
group; the application itself is txn_util.Transformer):

  1. test_eos_transform: 200k inputs on 4 partitions are transformed in transactions, ~20% of
     them aborted on purpose (seeded) before or after the offsets were added. A fresh
     read_committed reader sees every input exactly once and nothing of an aborted attempt; a
     read_uncommitted reader sees the aborted records (so the check can fail) and no control
     record; every partition's high watermark is its data records + one marker per
     transaction; the group's committed offsets are the input's end offsets.
  2. test_eos_transform_broker_kill: the same (60k inputs) with the broker SIGKILLed three times
     with a transaction open (after produce, after send_offsets, during commit); afterwards no
     transaction is left open (last stable offset == high watermark everywhere).
  3. test_zombie_fencing: a second producer with the same transactional.id fences the first: the
     zombie's later produce or commit fails with librdkafka's fatal _FENCED, its records never
     become visible, the new producer commits.
  4. test_transaction_timeout: the broker aborts a transaction left open past its
     transaction.timeout.ms (not before), the last stable offset moves on, the stuck producer's
     commit fails, its epoch was bumped.
  5. test_read_committed_offsets: ListOffsets with isolation READ_COMMITTED answers the last
     stable offset (the first offset of the open transaction), READ_UNCOMMITTED the high
     watermark; read_committed consumers (confluent-kafka and kafka-python) stop at it; after
     the commit both agree.

On the raw wire (kafka_wire.py), 6: FindCoordinator for transactional ids, InitProducerId
timeout limits, AddPartitionsToTxn / AddOffsetsToTxn / EndTxn errors (PRODUCER_FENCED,
INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE), KIP-890 verification of transactional Produce,
sequence gaps, client-written control batches (INVALID_RECORD), TxnOffsetCommit visibility,
WriteTxnMarkers for unknown producers and topics, DescribeTransactions and ListTransactions.
After the bad input the broker is alive and serves a normal producer and consumer.

Expected codes follow Apache Kafka (TransactionCoordinator, KafkaApis, LogValidator,
ProducerStateManager) and librdkafka's transaction manager (fencing errors normalized to the
fatal _FENCED).
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import kafka_wire as w
import txn_util as tu
from helpers import create_topic, produce_all, roundtrip_ok, unique_topic, wait_until

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
INVALID_RECORD = 87
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105

RETRIABLE_TXN = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
                 CONCURRENT_TRANSACTIONS}

MAX_TXN_TIMEOUT_MS = 60_000  # --transaction-max-timeout-ms of the wire-test broker
PARTITIONS = 4

# The versions encoded in kafka_wire.py that these tests need the broker to advertise.
WIRE_VERSIONS = {
    w.API_INIT_PRODUCER_ID: 4,
    w.API_ADD_PARTITIONS_TO_TXN: 3,
    w.API_ADD_OFFSETS_TO_TXN: 3,
    w.API_END_TXN: 3,
    w.API_TXN_OFFSET_COMMIT: 3,
    w.API_WRITE_TXN_MARKERS: 1,
    w.API_DESCRIBE_TRANSACTIONS: 0,
    w.API_LIST_TRANSACTIONS: 0,
    w.API_LIST_OFFSETS: 4,
    w.API_FIND_COORDINATOR: 2,
}


def txn_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def wb(module_strata_factory):
    """The broker shared by the tests that need no special flags or restarts."""
    b = module_strata_factory("--transaction-max-timeout-ms", MAX_TXN_TIMEOUT_MS,
                              "--group-initial-rebalance-delay-ms", 0, name="txn-wire")
    return b


@pytest.fixture
def b(wb):
    """wb, started again if an earlier test killed it (that test fails on its own)."""
    if not wb.alive():
        wb.start()
    return wb


# ---------------------------------------------------------------------------
# confluent-kafka helpers
# ---------------------------------------------------------------------------

def txn_producer(bootstrap: str, tid: str, **conf) -> Producer:
    c = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 0,
         "transaction.timeout.ms": 30_000, "log_level": 3}
    c.update(conf)
    return Producer(c)


def expect_fenced(fn, what: str) -> KafkaError:
    """fn must raise librdkafka's fatal fencing error (Kafka's PRODUCER_FENCED or
    INVALID_PRODUCER_EPOCH, which librdkafka reports as the fatal _FENCED)."""
    try:
        fn()
    except tu.CLIENT_ERRORS as e:
        err = tu.kerr(e)
        assert err is not None, f"{what}: {e!r}"
        assert err.fatal() and err.code() == KafkaError._FENCED, \
            f"{what}: expected the fatal _FENCED error, got {tu.describe_err(err)}"
        return err
    raise AssertionError(f"{what}: succeeded, but the producer was fenced")


def lso_hw(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    return tu.stable_offsets(bootstrap, topic, [partition])[partition]


def read_values(bootstrap: str, topic: str, isolation: str, end: int, partition: int = 0) -> list[bytes]:
    return tu.values(tu.read_topic(bootstrap, topic, [partition], isolation, {partition: end}, timeout=30))


# ---------------------------------------------------------------------------
# 1. exactly-once consume-transform-produce
# ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(240)
def test_eos_transform(strata_factory):
    """200,000 inputs -> transactional transformer (confluent-kafka, read_committed consumer in
    a group, ~20% of the transactions aborted on purpose, half of those after their offsets were
    sent) -> output. Proves: read_committed output holds each input exactly once and no aborted
    attempt; aborted records are physically present for read_uncommitted; control records are
    never delivered as messages and each transaction left exactly one marker per partition it
    wrote; the group's committed offsets are the input's end offsets. A fault-free run raises no
    transaction error at all."""
    b = strata_factory("--group-initial-rebalance-delay-ms", 0, name="eos")
    n = 200_000
    src, dst = unique_topic("eos-in"), unique_topic("eos-out")
    create_topic(b.bootstrap, src, partitions=PARTITIONS)
    create_topic(b.bootstrap, dst, partitions=PARTITIONS)
    t0 = time.monotonic()
    ends = tu.preload(b.bootstrap, src, n, PARTITIONS)
    t_pre = time.monotonic() - t0

    group = f"eos-{uuid.uuid4().hex[:8]}"
    tr = tu.Transformer(b.bootstrap, src, dst, group, txn_id("eos"), ends, seed="eos-transform",
                        abort_ratio=0.2, deadline_s=150)
    tr.run()
    t_run = time.monotonic() - t0 - t_pre
    assert tr.error is None, f"transformer failed: {tr.error!r}\n{tr.error_tb}\n{tr.summary()}"
    print(f"eos: preload {t_pre:.1f}s, transform {t_run:.1f}s, {tr.summary()}")
    b.assert_alive()

    outcomes = tr.outcomes()
    assert not tr.anomalies, f"anomalies: {tr.anomalies[:10]}\n{tr.summary()}"
    assert outcomes[tu.UNKNOWN] == 0, f"undecided transactions without any fault: {tr.summary()}"
    failures = {k: v for k, v in tr.events.items()
                if "failed" in k or k.startswith("delivery") or "-retry" in k}
    assert not failures, f"transaction errors in a fault-free run: {failures}\n{tr.error_log[:10]}"
    assert outcomes[tu.ABORTED] >= 10 and outcomes[tu.COMMITTED] >= 50, tr.summary()

    hw = tu.wait_stable(b.bootstrap, dst, range(PARTITIONS), timeout=15)
    check_output(b, tr, src, dst, group, hw, n, ends, exact_markers=True)


def check_output(b, tr, src, dst, group, hw, n, ends, exact_markers):
    """Every input exactly once in the output, nothing aborted visible (and aborted records
    physically there), and the group's offsets at the input's end."""
    rc = tu.read_topic(b.bootstrap, dst, range(PARTITIONS), "read_committed", hw)
    ru = tu.read_topic(b.bootstrap, dst, range(PARTITIONS), "read_uncommitted", hw)
    stats = tu.check_exactly_once(tr, rc, ru, exact_markers=exact_markers)
    print(f"exactly-once checks: {stats}")
    assert stats["committed_records"] == n
    got = tu.group_offsets(b.bootstrap, group, src, range(PARTITIONS))
    assert got == ends, f"group {group} committed {got}, the input ends at {ends}"


# ---------------------------------------------------------------------------
# 2. the same under broker SIGKILLs
# ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(240)
def test_eos_transform_broker_kill(strata_factory):
    """60,000 inputs through the transformer while the broker is SIGKILLed and restarted three
    times, each time with a transaction open: after its outputs were handed to the producer (in
    flight), after send_offsets_to_transaction, and while commit_transaction runs. The clients
    retry; on abortable errors the transformer aborts and rewinds, on fatal ones it makes a new
    producer with the same transactional.id. Proves: the exactly-once checks of
    test_eos_transform still hold (undecided attempts are all-or-nothing), nothing is written
    twice, the group's committed offsets reach the input's end, and no transaction is left open
    (READ_COMMITTED ListOffsets reaches the high watermark on every output partition within the
    10 s transaction timeout)."""
    txn_timeout_ms = 10_000
    b = strata_factory("--group-initial-rebalance-delay-ms", 0,
                       "--transaction-abort-timed-out-transaction-cleanup-interval-ms", 500,
                       name="eos-kill")
    n = 60_000
    src, dst = unique_topic("eosk-in"), unique_topic("eosk-out")
    create_topic(b.bootstrap, src, partitions=PARTITIONS)
    create_topic(b.bootstrap, dst, partitions=PARTITIONS)
    ends = tu.preload(b.bootstrap, src, n, PARTITIONS)

    group = f"eosk-{uuid.uuid4().hex[:8]}"
    plan = [(0.15, "produced"), (0.4, "offsets_sent"), (0.65, "committing")]
    tr = tu.Transformer(b.bootstrap, src, dst, group, txn_id("eosk"), ends, seed="eos-kill",
                        abort_ratio=0.2, batch=(200, 1500), txn_timeout_ms=txn_timeout_ms,
                        deadline_s=150, kill_plan=plan)
    t0 = time.monotonic()
    restart_s = []
    tr.start()
    while tr.is_alive() and time.monotonic() < tr.t_end + 30:
        if tr.kill_request.wait(0.05):
            tr.kill_request.clear()
            b.kill()
            tr.kill_done.set()
            t1 = time.monotonic()
            b.start()
            restart_s.append(round(time.monotonic() - t1, 2))
    tu.join_or_fail(tr, grace=1)
    hit = [(phase, aid, tr.attempts[aid].outcome, tr.attempts[aid].how) for phase, _, aid in tr.kills]
    print(f"eos with kills: {time.monotonic() - t0:.1f}s, restarts {restart_s}, attempts killed "
          f"(phase, id, outcome, how) {hit}, {tr.summary()}")
    assert tr.error is None, f"transformer failed: {tr.error!r}\n{tr.error_tb}\n{tr.summary()}"
    assert len(tr.kills) == 3 and b.starts == 4, f"kills {tr.kills}, broker starts {b.starts}"
    assert not tr.anomalies, f"anomalies: {tr.anomalies[:10]}\n{tr.summary()}"
    b.assert_alive()

    hw = tu.wait_stable(b.bootstrap, dst, range(PARTITIONS), timeout=txn_timeout_ms / 1000 + 2)
    check_output(b, tr, src, dst, group, hw, n, ends, exact_markers=False)
    # The input itself was never touched by a transaction.
    assert tu.stable_offsets(b.bootstrap, src, range(PARTITIONS)) == \
        {q: (e, e) for q, e in ends.items()}


# ---------------------------------------------------------------------------
# 3. zombie fencing
# ---------------------------------------------------------------------------

def test_zombie_fencing(b):
    """Two rounds with two producers sharing a transactional.id. Round a: the zombie has an open
    transaction with a flushed record, the new instance's init_transactions fences it, the
    zombie produces again and commits -> librdkafka's fatal _FENCED (Kafka answers the Produce
    with INVALID_PRODUCER_EPOCH). Round b: the same, but the zombie only commits -> the fatal
    _FENCED (EndTxn answers PRODUCER_FENCED). Proves: no zombie record is ever visible to
    read_committed (its first record is physically in the log, aborted), the zombie's record
    sent after the fence is not in the log at all, and the new instance commits normally."""
    topic = unique_topic("zombie")
    create_topic(b.bootstrap, topic, partitions=1)
    for rnd, zombie_produces in (("a", True), ("b", False)):
        tid = txn_id(f"zombie-{rnd}")
        delivered: list[bytes] = []

        def cb(err, msg):  # no calls on the error path (see txn_util.kerr)
            if err is None:
                delivered.append(msg.value())

        zombie = txn_producer(b.bootstrap, tid)
        zombie.init_transactions(30)
        zombie.begin_transaction()
        zombie.produce(topic, value=f"zombie-{rnd}-1".encode(), partition=0, on_delivery=cb)
        assert zombie.flush(15) == 0 and delivered == [f"zombie-{rnd}-1".encode()], delivered

        fresh = txn_producer(b.bootstrap, tid)
        fresh.init_transactions(30)  # fences the zombie and aborts its open transaction

        if zombie_produces:
            def go_on():
                zombie.produce(topic, value=f"zombie-{rnd}-2".encode(), partition=0, on_delivery=cb)
                zombie.flush(15)
                zombie.commit_transaction(15)
            err = expect_fenced(go_on, f"round {rnd}: zombie produce + commit after the fence")
            assert f"zombie-{rnd}-2".encode() not in delivered, \
                f"round {rnd}: the broker acknowledged a fenced producer's record: {delivered}"
        else:
            err = expect_fenced(lambda: zombie.commit_transaction(15),
                                f"round {rnd}: zombie commit after the fence")
        print(f"round {rnd}: zombie got {tu.describe_err(err)}")
        # A fatal error is final: the zombie cannot start over.
        with pytest.raises(tu.CLIENT_ERRORS):
            zombie.begin_transaction()
        del zombie

        fresh.begin_transaction()
        fresh.produce(topic, value=f"fresh-{rnd}".encode(), partition=0)
        fresh.commit_transaction(30)
        del fresh

    hw = tu.wait_stable(b.bootstrap, topic, [0], timeout=10)[0]
    committed = read_values(b.bootstrap, topic, "read_committed", hw)
    uncommitted = read_values(b.bootstrap, topic, "read_uncommitted", hw)
    assert committed == [b"fresh-a", b"fresh-b"], f"read_committed: {committed}"
    assert uncommitted == [b"zombie-a-1", b"fresh-a", b"zombie-b-1", b"fresh-b"], \
        f"read_uncommitted: {uncommitted} (the zombies' first records are in the log, aborted; " \
        f"the record sent after the fence must not be)"
    roundtrip_ok(b.bootstrap)
    b.assert_alive()


# ---------------------------------------------------------------------------
# 4. transaction timeout
# ---------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_transaction_timeout(strata_factory):
    """A producer with transaction.timeout.ms=5000 writes 3 records in a transaction and goes
    silent; another transactional producer commits 3 records after them. Proves: while the
    stuck transaction is open the last stable offset stays at its first offset (read_committed
    sees nothing, not even the later committed records); the broker (cleanup every 500 ms)
    aborts it no earlier than its timeout and within a few seconds after it, bumping the
    producer epoch (DescribeTransactions: CompleteAbort); then read_committed sees the other
    producer's records and never the stuck ones; the stuck producer's commit fails (fenced or
    abortable); a new producer with the same transactional.id works."""
    timeout_ms = 5000
    b = strata_factory("--transaction-abort-timed-out-transaction-cleanup-interval-ms", 500,
                       name="txn-timeout")
    topic = unique_topic("txn-timeout")
    create_topic(b.bootstrap, topic, partitions=1)
    stuck_id, other_id = txn_id("stuck"), txn_id("other")

    stuck = txn_producer(b.bootstrap, stuck_id, **{"transaction.timeout.ms": timeout_ms})
    stuck.init_transactions(30)
    stuck.begin_transaction()
    t_begin = time.monotonic()
    for i in range(3):
        stuck.produce(topic, value=f"stuck-{i}".encode(), partition=0)
    assert stuck.flush(10) == 0

    other = txn_producer(b.bootstrap, other_id)
    other.init_transactions(30)
    other.begin_transaction()
    for i in range(3):
        other.produce(topic, value=f"other-{i}".encode(), partition=0)
    other.commit_transaction(30)

    with w.Conn(b.bootstrap) as c:
        before = w.describe_transactions(c, [stuck_id])[stuck_id]
    # The other producer's commit marker is written after EndTxn is answered: wait for it.
    lso, hw = wait_until(lambda: (lambda o: o if o[1] == 7 else None)(lso_hw(b.bootstrap, topic)),
                         timeout=3, msg="the other transaction's commit marker at offset 6")
    assert read_values(b.bootstrap, topic, "read_committed", 0) == []
    early = time.monotonic() - t_begin
    assert early < timeout_ms / 1000 - 0.5, f"setup took {early:.1f}s, too slow to observe the open txn"
    assert before["error_code"] == 0 and before["state"] == "Ongoing", before
    assert before["timeout_ms"] == timeout_ms, before
    assert lso == 0, \
        f"while the stuck transaction is open: (last stable offset, high watermark) = {(lso, hw)}, " \
        f"expected (0, 7): stuck 0-2, other 3-5 + its commit marker at 6"

    # Wait for the broker to abort it, noting when the last stable offset moved.
    deadline = time.monotonic() + timeout_ms / 1000 + 15
    while True:
        lso, hw = lso_hw(b.bootstrap, topic)
        if lso == hw and lso > 0:
            break
        assert time.monotonic() < deadline, \
            f"stuck transaction not aborted {time.monotonic() - t_begin:.1f}s after it began " \
            f"(timeout {timeout_ms} ms): last stable offset {lso}, high watermark {hw}"
        time.sleep(0.1)
    moved = time.monotonic() - t_begin
    assert moved >= timeout_ms / 1000 - 0.3, \
        f"the broker aborted the transaction {moved:.2f}s after it began, before its {timeout_ms} ms timeout"
    assert hw == 8, f"high watermark {hw}: expected 8 (one abort marker after the 7 offsets)"

    with w.Conn(b.bootstrap) as c:
        after = w.describe_transactions(c, [stuck_id])[stuck_id]
    assert after["error_code"] == 0 and after["state"] == "CompleteAbort", after
    assert after["producer_id"] == before["producer_id"] and \
        after["producer_epoch"] > before["producer_epoch"], \
        f"a timed-out transaction is aborted with a bumped epoch (fencing the stuck producer): " \
        f"before {before}, after {after}"

    assert read_values(b.bootstrap, topic, "read_committed", hw) == [b"other-0", b"other-1", b"other-2"]
    assert read_values(b.bootstrap, topic, "read_uncommitted", hw) == \
        [b"stuck-0", b"stuck-1", b"stuck-2", b"other-0", b"other-1", b"other-2"]

    try:
        stuck.commit_transaction(15)
    except tu.CLIENT_ERRORS as e:
        err = tu.kerr(e)
        assert err is not None and (err.fatal() or err.txn_requires_abort()), \
            f"stuck producer's commit failed, but not as fenced/abortable: {e!r}"
        print(f"stuck producer's commit: {tu.describe_err(err)}")
    else:
        raise AssertionError("the stuck producer committed a transaction the broker had aborted")
    del stuck
    assert read_values(b.bootstrap, topic, "read_committed", hw) == [b"other-0", b"other-1", b"other-2"]

    again = txn_producer(b.bootstrap, stuck_id, **{"transaction.timeout.ms": timeout_ms})
    again.init_transactions(30)
    again.begin_transaction()
    again.produce(topic, value=b"stuck-again", partition=0)
    again.commit_transaction(30)
    hw = tu.wait_stable(b.bootstrap, topic, [0], timeout=10)[0]
    assert read_values(b.bootstrap, topic, "read_committed", hw) == \
        [b"other-0", b"other-1", b"other-2", b"stuck-again"]
    b.assert_alive()


# ---------------------------------------------------------------------------
# 5. last stable offset and read_committed fetches
# ---------------------------------------------------------------------------

def test_read_committed_offsets(b):
    """Offsets 0-4 plain records, 5-7 an open transaction (confluent-kafka, flushed, not
    committed), 8-9 plain records after it. Proves: ListOffsets (every advertised version 2..5)
    with READ_COMMITTED answers 5 (the first offset of the open transaction), READ_UNCOMMITTED
    10; read_committed consumers (confluent-kafka, kafka-python) get offsets 0-4 only and
    nothing past the last stable offset, read_uncommitted gets all 10; after the commit both
    ListOffsets answers are 11 (the commit marker is at 10) and read_committed gets all 10
    records, in order, without the marker."""
    topic = unique_topic("lso")
    create_topic(b.bootstrap, topic, partitions=1)
    plain = [{"value": f"plain-{i}".encode(), "partition": 0} for i in range(5)]
    assert all(r.error is None for r in produce_all(b.bootstrap, topic, plain))

    p = txn_producer(b.bootstrap, txn_id("lso"))
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"txn-{i}".encode(), partition=0)
    assert p.flush(10) == 0
    after = [{"value": f"after-{i}".encode(), "partition": 0} for i in range(2)]
    reps = produce_all(b.bootstrap, topic, after)
    assert [r.offset for r in reps] == [8, 9], reps

    with w.Conn(b.bootstrap) as c:
        _, apis = w.api_versions(c, 0)
        lo, hi = apis[w.API_LIST_OFFSETS]
        versions = [v for v in range(max(lo, 2), min(hi, 5) + 1)]
        assert versions, f"ListOffsets {lo}..{hi} has no version with an isolation level"
        for v in versions:
            rc = w.list_offsets(c, topic, [0], w.ISOLATION_READ_COMMITTED, version=v)[0]
            ru = w.list_offsets(c, topic, [0], w.ISOLATION_READ_UNCOMMITTED, version=v)[0]
            assert rc["error_code"] == 0 and rc["offset"] == 5, \
                f"ListOffsets v{v} READ_COMMITTED with a transaction open at 5: {rc}"
            assert ru["error_code"] == 0 and ru["offset"] == 10, f"ListOffsets v{v} READ_UNCOMMITTED: {ru}"

    assert read_values(b.bootstrap, topic, "read_committed", 5) == [f"plain-{i}".encode() for i in range(5)]
    # Nothing past the last stable offset, even waiting a little (EOF at 5, no records after).
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lso-check",
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        extra = []
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end:
            for m in c.consume(100, timeout=0.2):
                if m.error() is None:
                    extra.append((m.offset(), m.value()))
        assert extra == [], f"read_committed consumer got records past the last stable offset: {extra}"
    finally:
        c.close()
    expected_all = ([f"plain-{i}".encode() for i in range(5)] + [f"txn-{i}".encode() for i in range(3)]
                    + [f"after-{i}".encode() for i in range(2)])
    assert read_values(b.bootstrap, topic, "read_uncommitted", 10) == expected_all

    # kafka-python (its own Fetch/ListOffsets versions) in read_committed mode.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, isolation_level="read_committed",
                       enable_auto_commit=False, group_id=None, auto_offset_reset="earliest")
    try:
        ktp = KTP(topic, 0)
        kc.assign([ktp])
        assert kc.end_offsets([ktp])[ktp] == 5, "kafka-python read_committed end offset"
        got = []
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end and len(got) < 5:
            for recs in kc.poll(timeout_ms=200).values():
                got.extend(r.value for r in recs)
        t_end = time.monotonic() + 1.5  # then nothing more
        while time.monotonic() < t_end:
            for recs in kc.poll(timeout_ms=200).values():
                got.extend(r.value for r in recs)
        assert got == [f"plain-{i}".encode() for i in range(5)], f"kafka-python read_committed: {got}"
    finally:
        kc.close()

    p.commit_transaction(30)
    hw = tu.wait_stable(b.bootstrap, topic, [0], timeout=10)[0]
    assert hw == 11, f"high watermark after the commit: {hw} (10 records + the commit marker)"
    assert read_values(b.bootstrap, topic, "read_committed", hw) == expected_all
    assert read_values(b.bootstrap, topic, "read_uncommitted", hw) == expected_all
    b.assert_alive()


# ---------------------------------------------------------------------------
# 6. the transaction APIs on the raw wire
# ---------------------------------------------------------------------------

class Wire:
    """A raw connection that checks the advertised versions and retries the transient
    coordinator errors (load in progress, not available, concurrent transactions) the way
    clients do, for at most 15 s."""

    def __init__(self, bootstrap: str):
        self.c = w.Conn(bootstrap)
        err, self.apis = w.api_versions(self.c, 0)
        assert err == 0
        missing = {k: v for k, v in WIRE_VERSIONS.items()
                   if k not in self.apis or not self.apis[k][0] <= v <= self.apis[k][1]}
        assert not missing, (f"broker does not advertise these (api key: version) pairs: {missing}; "
                             f"advertised: { {k: self.apis.get(k) for k in WIRE_VERSIONS} }")
        self.produce_version = w.pick_produce_version(self.apis)

    def supports(self, api: int, version: int) -> bool:
        lo, hi = self.apis.get(api, (1, 0))
        return lo <= version <= hi

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @staticmethod
    def _retry(fn, code_of):
        deadline = time.monotonic() + 15
        while True:
            r = fn()
            if code_of(r) not in RETRIABLE_TXN or time.monotonic() > deadline:
                return r
            time.sleep(0.05)

    def init(self, tid: str | None, timeout_ms: int = 30_000, version: int = 4) -> dict:
        return self._retry(lambda: w.init_producer_id(self.c, version, tid, timeout_ms),
                           lambda r: r["error_code"])

    def init_ok(self, tid: str, timeout_ms: int = 30_000) -> tuple[int, int]:
        r = self.init(tid, timeout_ms)
        assert r["error_code"] == 0 and r["producer_id"] >= 0, f"InitProducerId {tid}: {r}"
        return r["producer_id"], r["producer_epoch"]

    def add(self, tid, pid, epoch, parts: dict[str, list[int]], version: int = 3) -> dict:
        return self._retry(lambda: w.add_partitions_to_txn(self.c, tid, pid, epoch, parts, version),
                           lambda r: next(iter(set(r.values()))) if len(set(r.values())) == 1 else -1)

    def add_ok(self, tid, pid, epoch, parts):
        r = self.add(tid, pid, epoch, parts)
        assert set(r.values()) == {NONE} and len(r) == sum(len(v) for v in parts.values()), \
            f"AddPartitionsToTxn {tid} {parts}: {r}"

    def end(self, tid, pid, epoch, commit: bool, version: int = 3) -> int:
        return self._retry(lambda: w.end_txn(self.c, tid, pid, epoch, commit, version),
                           lambda r: r["error_code"])["error_code"]

    def add_offsets(self, tid, pid, epoch, group, version: int = 3) -> int:
        return self._retry(lambda: w.add_offsets_to_txn(self.c, tid, pid, epoch, group, version),
                           lambda code: code)

    def produce(self, tid, topic, partition, batch) -> dict:
        return w.produce_txn(self.c, self.produce_version, topic, partition, batch, tid)

    def describe(self, tid) -> dict:
        return w.describe_transactions(self.c, [tid])[tid]

    def wait_state(self, tid, state: str, timeout: float = 10) -> dict:
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            d = self.describe(tid)
            seen.append(d["state"])
            if d["error_code"] == 0 and d["state"] == state:
                return d
            assert time.monotonic() < deadline, f"{tid} never reached {state}: states seen {seen[-10:]}, last {d}"
            time.sleep(0.05)


def vals(tag: str, first: int, n: int) -> list[bytes]:
    return [f"{tag}-{first + i}".encode() for i in range(n)]


def test_find_coordinator_and_init_producer_id(b):
    """FindCoordinator key_type=1 names this broker for any transactional id (and key_type=0
    for a group); InitProducerId with a transactional id: a timeout above
    --transaction-max-timeout-ms or <= 0 -> INVALID_TRANSACTION_TIMEOUT (50), an empty id ->
    INVALID_REQUEST (42), the maximum itself is fine; a second InitProducerId for the same id
    keeps the producer id and bumps the epoch; different ids get different producer ids."""
    with Wire(b.bootstrap) as x:
        for key_type, key in ((1, txn_id("fc")), (1, "x"), (0, "some-group")):
            r = w.find_coordinator(x.c, key, key_type)
            assert r["error_code"] == 0, f"FindCoordinator {key!r} key_type {key_type}: {r}"
            assert (r["host"], r["port"]) == ("127.0.0.1", b.port) and r["node_id"] >= 0, r

        tid = txn_id("init")
        for bad in (MAX_TXN_TIMEOUT_MS + 1, 2**31 - 1, 0, -1):
            r = x.init(tid, bad)
            assert r["error_code"] == INVALID_TRANSACTION_TIMEOUT, \
                f"InitProducerId timeout {bad} ms (max {MAX_TXN_TIMEOUT_MS}): {r}"
        r = x.init("", 10_000)
        assert r["error_code"] == INVALID_REQUEST, f"InitProducerId with an empty transactional id: {r}"

        pid, epoch = x.init_ok(tid, MAX_TXN_TIMEOUT_MS)
        assert epoch == 0, f"first InitProducerId for {tid}: epoch {epoch}"
        pid2, epoch2 = x.init_ok(tid, 10_000)
        assert (pid2, epoch2) == (pid, 1), f"second InitProducerId: {(pid2, epoch2)}, first {(pid, epoch)}"
        other, _ = x.init_ok(txn_id("init-other"))
        assert other != pid
        for v in (0, 1, 2, 3, 5):  # every version reaches the same coordinator state
            if x.supports(w.API_INIT_PRODUCER_ID, v):
                r = w.init_producer_id(x.c, v, tid, 10_000)
                assert r["error_code"] == 0 and r["producer_id"] == pid, f"InitProducerId v{v}: {r}"
    roundtrip_ok(b.bootstrap)
    b.assert_alive()


def test_add_partitions_and_end_txn_errors(b):
    """AddPartitionsToTxn: an old epoch -> PRODUCER_FENCED (90) (v1: INVALID_PRODUCER_EPOCH 47,
    as Kafka answers clients older than v2), an unknown transactional id or the wrong producer
    id -> INVALID_PRODUCER_ID_MAPPING (49); AddOffsetsToTxn with an old epoch -> 90; EndTxn:
    commit with nothing added (state Empty) -> INVALID_TXN_STATE (48), an old epoch -> 90 (v1:
    47), an unknown id -> 49; after a real abort: the same abort again -> 0 (a retry), a commit
    -> 48. None of the refusals changes the transaction (DescribeTransactions)."""
    topic = unique_topic("txn-errs")
    create_topic(b.bootstrap, topic, partitions=2)
    with Wire(b.bootstrap) as x:
        tid = txn_id("errs")
        pid, e0 = x.init_ok(tid)
        _, e1 = x.init_ok(tid)
        assert e1 == e0 + 1
        parts = {topic: [0, 1]}

        r = x.add(tid, pid, e0, parts)
        assert r == {(topic, 0): PRODUCER_FENCED, (topic, 1): PRODUCER_FENCED}, f"old epoch (v3): {r}"
        if x.supports(w.API_ADD_PARTITIONS_TO_TXN, 1):
            r = x.add(tid, pid, e0, parts, version=1)
            assert set(r.values()) == {INVALID_PRODUCER_EPOCH}, f"old epoch (v1): {r}"
        r = x.add(tid, pid, e1 + 5, parts)
        assert set(r.values()) == {PRODUCER_FENCED}, f"future epoch: {r}"
        r = x.add(txn_id("never-initialized"), pid, e1, parts)
        assert set(r.values()) == {INVALID_PRODUCER_ID_MAPPING}, f"unknown transactional id: {r}"
        r = x.add(tid, pid + 1_000_003, e1, parts)
        assert set(r.values()) == {INVALID_PRODUCER_ID_MAPPING}, f"wrong producer id: {r}"
        code = x.add_offsets(tid, pid, e0, "some-group")
        assert code == PRODUCER_FENCED, f"AddOffsetsToTxn with an old epoch: {code}"

        code = x.end(tid, pid, e1, commit=True)
        assert code == INVALID_TXN_STATE, f"EndTxn commit with no partitions (state Empty): {code}"
        d = x.describe(tid)
        assert d["state"] == "Empty" and d["partitions"] == {} and d["producer_epoch"] == e1, d

        x.add_ok(tid, pid, e1, parts)
        code = x.end(tid, pid, e0, commit=True)
        assert code == PRODUCER_FENCED, f"EndTxn with an old epoch (v3): {code}"
        if x.supports(w.API_END_TXN, 1):
            code = x.end(tid, pid, e0, commit=True, version=1)
            assert code == INVALID_PRODUCER_EPOCH, f"EndTxn with an old epoch (v1): {code}"
        code = x.end(txn_id("never-initialized"), pid, e1, commit=True)
        assert code == INVALID_PRODUCER_ID_MAPPING, f"EndTxn for an unknown transactional id: {code}"
        code = x.end(tid, pid + 1_000_003, e1, commit=True)
        assert code == INVALID_PRODUCER_ID_MAPPING, f"EndTxn with the wrong producer id: {code}"
        d = x.describe(tid)
        assert d["state"] == "Ongoing" and d["partitions"] == {topic: [0, 1]}, \
            f"refused requests changed the transaction: {d}"

        assert x.end(tid, pid, e1, commit=False) == NONE
        x.wait_state(tid, "CompleteAbort")
        assert x.end(tid, pid, e1, commit=False) == NONE, "a retried abort of an aborted transaction"
        assert x.end(tid, pid, e1, commit=True) == INVALID_TXN_STATE, "commit after abort"
        assert x.describe(tid)["state"] == "CompleteAbort"
    roundtrip_ok(b.bootstrap)
    b.assert_alive()


def test_transactional_produce_rules(b):
    """Transactional Produce on the raw wire (attributes 0x10, producer id/epoch from
    InitProducerId with a transactional id, the request's TransactionalId set). Proves: a
    partition not added to the transaction -> INVALID_TXN_STATE (48) and nothing appended
    (KIP-890 verification); after AddPartitionsToTxn the same batch goes in; a duplicate of it
    gets its original offset; a sequence gap -> OUT_OF_ORDER_SEQUENCE_NUMBER (45); a
    client-written control batch (0x30) -> INVALID_RECORD (87) and nothing appended; while open,
    the last stable offset is the transaction's first offset; after EndTxn commit exactly one
    marker is appended and read_committed returns the data without it; an aborted transaction's
    records stay hidden from read_committed but are there for read_uncommitted."""
    topic = unique_topic("txn-produce")
    create_topic(b.bootstrap, topic, partitions=2)
    plain = [{"value": f"plain-{i}".encode(), "partition": 0} for i in range(3)]
    assert all(r.error is None for r in produce_all(b.bootstrap, topic, plain))
    with Wire(b.bootstrap) as x:
        tid = txn_id("produce")
        pid, epoch = x.init_ok(tid)

        r = x.produce(tid, topic, 0, w.txn_batch(vals("t", 0, 5), pid, epoch, 0))
        assert r["error_code"] == INVALID_TXN_STATE, \
            f"transactional produce to a partition not in the transaction: {r}"
        assert lso_hw(b.bootstrap, topic) == (3, 3), "a refused transactional batch was appended"

        x.add_ok(tid, pid, epoch, {topic: [0]})
        r = x.produce(tid, topic, 0, w.txn_batch(vals("t", 0, 5), pid, epoch, 0))
        assert r["error_code"] == NONE and r["base_offset"] == 3, f"after AddPartitionsToTxn: {r}"
        r = x.produce(tid, topic, 0, w.txn_batch(vals("t", 0, 5), pid, epoch, 0))
        assert r["error_code"] == NONE and r["base_offset"] == 3, f"duplicate batch: {r}"
        r = x.produce(tid, topic, 0, w.txn_batch(vals("t", 10, 5), pid, epoch, 10))
        assert r["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence gap (5 expected, 10 sent): {r}"
        r = x.produce(tid, topic, 0, w.txn_batch(vals("t", 5, 5), pid, epoch, 5))
        assert r["error_code"] == NONE and r["base_offset"] == 8, f"next in sequence: {r}"
        assert lso_hw(b.bootstrap, topic) == (3, 13), "open transaction from offset 3 to 12"

        r = x.produce(tid, topic, 0, w.control_batch(True, pid, epoch))
        assert r["error_code"] == INVALID_RECORD, f"client Produce with a control batch: {r}"
        r = x.produce(tid, topic, 1, w.txn_batch(vals("p1", 0, 2), pid, epoch, 0))
        assert r["error_code"] == INVALID_TXN_STATE, f"partition 1 is not in the transaction: {r}"
        assert lso_hw(b.bootstrap, topic) == (3, 13), "a refused batch was appended"
        assert lso_hw(b.bootstrap, topic, 1) == (0, 0)
        d = x.describe(tid)
        assert d["state"] == "Ongoing" and d["partitions"] == {topic: [0]}, d

        assert x.end(tid, pid, epoch, commit=True) == NONE
        hw = tu.wait_stable(b.bootstrap, topic, [0], timeout=10)[0]
        assert hw == 14, f"high watermark after the commit: {hw} (13 records + 1 marker)"
        committed = [f"plain-{i}".encode() for i in range(3)] + vals("t", 0, 10)
        assert read_values(b.bootstrap, topic, "read_committed", hw) == committed
        x.wait_state(tid, "CompleteCommit")

        # The next transaction of the same producer: aborted.
        x.add_ok(tid, pid, epoch, {topic: [0]})
        r = x.produce(tid, topic, 0, w.txn_batch(vals("aborted", 0, 4), pid, epoch, 10))
        assert r["error_code"] == NONE and r["base_offset"] == 14, r
        assert x.end(tid, pid, epoch, commit=False) == NONE
        hw = tu.wait_stable(b.bootstrap, topic, [0], timeout=10)[0]
        assert hw == 19, f"high watermark after the abort: {hw} (17 records + the markers at 13 and 18)"
        assert read_values(b.bootstrap, topic, "read_committed", hw) == committed
        assert read_values(b.bootstrap, topic, "read_uncommitted", hw) == committed + vals("aborted", 0, 4)
    roundtrip_ok(b.bootstrap)
    b.assert_alive()


def test_txn_offset_commit(b):
    """AddOffsetsToTxn + TxnOffsetCommit v3 (generation -1, no member: a group used only through
    transactions). Proves: the offset is not visible to OffsetFetch while the transaction is
    open, becomes visible after EndTxn commit, and an aborted transaction's offset never shows."""
    topic = unique_topic("txn-offsets")
    create_topic(b.bootstrap, topic, partitions=1)
    group = f"txn-group-{uuid.uuid4().hex[:8]}"

    def fetched():
        r = w.group_call(x.c, w.API_OFFSET_FETCH, w.offset_fetch_body(group, {topic: [0]}))
        p = r["partitions"][(topic, 0)]
        assert r["error_code"] == 0 and p["error_code"] == 0, r
        return p["offset"]

    with Wire(b.bootstrap) as x:
        tid = txn_id("offsets")
        pid, epoch = x.init_ok(tid)
        assert x.add_offsets(tid, pid, epoch, group) == NONE
        r = w.txn_offset_commit(x.c, tid, group, pid, epoch, {topic: {0: 42}})
        assert r == {(topic, 0): NONE}, f"TxnOffsetCommit: {r}"
        assert fetched() == -1, "a transactional offset is visible before the commit"
        assert x.end(tid, pid, epoch, commit=True) == NONE
        wait_until(lambda: fetched() == 42, timeout=10, msg="the committed transactional offset")

        assert x.add_offsets(tid, pid, epoch, group) == NONE
        r = w.txn_offset_commit(x.c, tid, group, pid, epoch, {topic: {0: 99}})
        assert r == {(topic, 0): NONE}, f"TxnOffsetCommit: {r}"
        assert x.end(tid, pid, epoch, commit=False) == NONE
        x.wait_state(tid, "CompleteAbort")
        time.sleep(0.5)
        assert fetched() == 42, "an aborted transaction's offset became visible"
    roundtrip_ok(b.bootstrap)
    b.assert_alive()


def test_write_txn_markers(b):
    """WriteTxnMarkers v1 (the coordinator-to-partition API) from a client: a COMMIT and an
    ABORT marker for producers the partition has never seen -> 0 each (Kafka writes them: the
    high watermark moves by one per marker); an unknown topic and an unknown partition ->
    UNKNOWN_TOPIC_OR_PARTITION (3) in the same request. Proves: the partition's data is intact
    for both isolation levels, markers are not delivered as records, the next produce lands
    after them, and the broker keeps serving."""
    topic = unique_topic("markers")
    create_topic(b.bootstrap, topic, partitions=1)
    data = [{"value": f"v{i}".encode(), "partition": 0} for i in range(5)]
    assert all(r.error is None for r in produce_all(b.bootstrap, topic, data))
    before = read_values(b.bootstrap, topic, "read_uncommitted", 5)
    with Wire(b.bootstrap) as x:
        ghost1, ghost2 = 7_000_000_123, 7_000_000_456
        missing = unique_topic("no-such-topic")
        r = w.write_txn_markers(x.c, [
            (ghost1, 0, True, {topic: [0]}, 0),
            (ghost2, 3, False, {topic: [0], missing: [0]}, 0),
            (ghost1 + 1, 0, True, {topic: [7]}, 0),
        ])
        assert r == {ghost1: {(topic, 0): NONE},
                     ghost2: {(topic, 0): NONE, (missing, 0): UNKNOWN_TOPIC_OR_PARTITION},
                     ghost1 + 1: {(topic, 7): UNKNOWN_TOPIC_OR_PARTITION}}, f"WriteTxnMarkers: {r}"
    b.assert_alive()
    lso, hw = lso_hw(b.bootstrap, topic)
    assert (lso, hw) == (7, 7), f"after two markers on 5 records: (last stable offset, hw) = {(lso, hw)}"
    assert read_values(b.bootstrap, topic, "read_uncommitted", hw) == before
    assert read_values(b.bootstrap, topic, "read_committed", hw) == before
    reps = produce_all(b.bootstrap, topic, [{"value": b"next", "partition": 0}])
    assert reps[0].error is None and reps[0].offset == 7, reps
    roundtrip_ok(b.bootstrap)


def test_describe_and_list_transactions(strata_factory):
    """DescribeTransactions v0 / ListTransactions v0 on a broker of its own (so the listed ids
    are exactly these). Proves: an unknown id -> TRANSACTIONAL_ID_NOT_FOUND (105); states
    "Empty" after InitProducerId, "Ongoing" with the added partitions listed and the timeout
    and producer id/epoch reported, "CompleteCommit"/"CompleteAbort" (through at most
    PrepareCommit/PrepareAbort) with no partitions; ListTransactions with no filter lists all
    five ids, with a state filter exactly the ids in those states, with a producer-id filter
    exactly that producer, and reports an unknown state name in UnknownStateFilters."""
    nb = strata_factory(name="txn-list")
    topic = unique_topic("txn-list")
    create_topic(nb.bootstrap, topic, partitions=3)
    ids = {k: txn_id(k) for k in ("empty", "ongoing1", "ongoing2", "committed", "aborted")}
    with Wire(nb.bootstrap) as x:
        d = x.describe(txn_id("unknown"))
        assert d["error_code"] == TRANSACTIONAL_ID_NOT_FOUND, f"unknown transactional id: {d}"

        pids = {k: x.init_ok(tid, 20_000 + i) for i, (k, tid) in enumerate(ids.items())}
        d = x.describe(ids["empty"])
        assert (d["error_code"], d["state"], d["partitions"]) == (0, "Empty", {}), d
        assert (d["producer_id"], d["producer_epoch"]) == pids["empty"], d

        x.add_ok(ids["ongoing1"], *pids["ongoing1"], {topic: [0, 2]})
        x.add_ok(ids["ongoing2"], *pids["ongoing2"], {topic: [1]})
        x.add_ok(ids["committed"], *pids["committed"], {topic: [0]})
        x.add_ok(ids["aborted"], *pids["aborted"], {topic: [1, 2]})
        t_ms = int(time.time() * 1000)
        d = x.describe(ids["ongoing1"])
        assert d["state"] == "Ongoing" and d["partitions"] == {topic: [0, 2]}, d
        assert d["timeout_ms"] == 20_001 and (d["producer_id"], d["producer_epoch"]) == pids["ongoing1"], d
        assert abs(d["start_time_ms"] - t_ms) < 30_000, f"transaction start time {d['start_time_ms']} vs now {t_ms}"
        for k in ("committed", "aborted"):
            pid, epoch = pids[k]
            q = 0 if k == "committed" else 1
            r = x.produce(ids[k], topic, q, w.txn_batch([k.encode()], pid, epoch, 0))
            assert r["error_code"] == NONE, r
        assert x.end(ids["committed"], *pids["committed"], commit=True) == NONE
        assert x.end(ids["aborted"], *pids["aborted"], commit=False) == NONE
        for k, final, transient in (("committed", "CompleteCommit", "PrepareCommit"),
                                    ("aborted", "CompleteAbort", "PrepareAbort")):
            states = []
            deadline = time.monotonic() + 10
            while True:
                d = x.describe(ids[k])
                states.append(d["state"])
                if d["state"] == final:
                    break
                assert d["state"] == transient and time.monotonic() < deadline, \
                    f"{k}: states {states}, last {d}"
                time.sleep(0.05)
            assert d["partitions"] == {}, f"{k}: a completed transaction lists partitions: {d}"

        def listed(states=(), pids_=()):
            r = w.list_transactions(x.c, states, pids_)
            assert r["error_code"] == 0, r
            return r

        everything = listed()["transactions"]
        assert set(everything) == set(ids.values()), f"ListTransactions without filters: {everything}"
        expect_state = {"empty": "Empty", "ongoing1": "Ongoing", "ongoing2": "Ongoing",
                        "committed": "CompleteCommit", "aborted": "CompleteAbort"}
        for k, tid in ids.items():
            assert everything[tid] == (pids[k][0], expect_state[k]), (k, everything[tid])
        for states, keys in ((["Ongoing"], {"ongoing1", "ongoing2"}), (["Empty"], {"empty"}),
                             (["CompleteCommit", "CompleteAbort"], {"committed", "aborted"}),
                             (["PrepareCommit"], set())):
            got = set(listed(states)["transactions"])
            assert got == {ids[k] for k in keys}, f"ListTransactions states={states}: {got}"
        got = listed((), [pids["aborted"][0]])["transactions"]
        assert set(got) == {ids["aborted"]}, f"ListTransactions producer id filter: {got}"
        got = listed(["Ongoing"], [pids["committed"][0]])["transactions"]
        assert got == {}, f"ListTransactions state and producer filters together: {got}"
        r = listed(["Bogus", "Ongoing"])
        assert r["unknown_state_filters"] == ["Bogus"], r
        assert set(r["transactions"]) == {ids["ongoing1"], ids["ongoing2"]}, r

        # Finish the open ones; the list follows.
        for k in ("ongoing1", "ongoing2"):
            assert x.end(ids[k], *pids[k], commit=(k == "ongoing1")) == NONE
        x.wait_state(ids["ongoing1"], "CompleteCommit")
        x.wait_state(ids["ongoing2"], "CompleteAbort")
        assert listed(["Ongoing"])["transactions"] == {}
    roundtrip_ok(nb.bootstrap)
    nb.assert_alive()
