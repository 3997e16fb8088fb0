"""Idempotent producer (KIP-98 without transactions): InitProducerId and per-partition
producer state (duplicate batches, sequence gaps, fenced epochs).

End to end, through `chaos_proxy.ChaosProxy` (a loopback TCP proxy that kills client
connections every 0.3-1.5 s and sometimes throws away the broker's response to a Produce
request it has executed, so the client retries batches that are already in the log); the
broker advertises the proxy's address, so every client connection goes through it:

  * confluent-kafka with enable.idempotence=True writes 100k sequence-numbered values to a
    4-partition topic through the proxy: every value ends up in the log exactly once, at the
    offset the producer was told, in produce order per partition;
  * the same with the broker SIGKILLed and restarted three times during the run (producer
    state rebuilt from the log): exactly once per acknowledged value, nothing ever twice;
  * the negative control: the same harness with idempotence off does write duplicates, so the
    checks above can fail.

On the raw wire (kafka_wire.py): InitProducerId v0-v5 hands out distinct producer ids with
epoch 0, also after SIGKILL and graceful restarts; Produce with producer ids: duplicates of one
of the last 5 batches are answered with the original base offset and not appended again,
OUT_OF_ORDER_SEQUENCE_NUMBER (45) for gaps, overlaps, old batches and a new epoch not starting
at 0, INVALID_PRODUCER_EPOCH (47) for an older epoch, unknown producers accepted at any
sequence, state per partition and rebuilt after a restart.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections import Counter

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition

import kafka_wire as w
from chaos_proxy import ChaosProxy
from conftest import free_port
from helpers import consume_partitions, consumer, create_topic, roundtrip_ok, unique_topic, wait_until

PARTITIONS = 4
N_RECORDS = 100_000
RATE = 10_000  # values per second offered by the producer: 100k take ~10 s
MIN_KILLS = 5  # chaos kills of live connections per run, at least
MIN_DROPPED = 3  # Produce responses thrown away after the broker executed the request, at least

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


# ---------------------------------------------------------------------------
# a broker behind the chaos proxy
# ---------------------------------------------------------------------------

@pytest.fixture
def proxies():
    made: list[ChaosProxy] = []
    yield made
    for p in made:
        p.stop()


def advertise(b, address: str) -> None:
    """Make `b` advertise `address` instead of its own listener (conftest's command line
    already has --advertise, and the CLI takes it once)."""
    base = b.command

    def command():
        cmd = base()
        cmd[cmd.index("--advertise") + 1] = address
        return cmd

    b.command = command


def broker_behind_proxy(strata_factory, proxies, name: str, *args, seed, **proxy_kw):
    b = strata_factory(*args, start=False, name=name)
    proxy = ChaosProxy(free_port(), b.port, seed=seed, **proxy_kw).start()
    proxies.append(proxy)
    advertise(b, proxy.address)
    b.start()
    return b, proxy


# ---------------------------------------------------------------------------
# the producer
# ---------------------------------------------------------------------------

def seq_of(value: bytes) -> int:
    return int(value.split(b":", 1)[0])


class SeqProducer(threading.Thread):
    """Produces values "SEQ:padding" for SEQ in 0..n-1 (to partition SEQ % PARTITIONS) at about
    `rate` per second, then flushes. Records every delivery report."""

    def __init__(self, bootstrap: str, topic: str, n: int, rate: int, idempotence: bool = True,
                 **conf):
        super().__init__(daemon=True, name="seq-producer")
        self.topic = topic
        self.n = n
        self.rate = rate
        self.conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": idempotence,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "retries": 1_000_000,
            "linger.ms": 5,
            "batch.num.messages": 200,
            "message.timeout.ms": 120_000,
            "request.timeout.ms": 10_000,
            "socket.timeout.ms": 10_000,
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 200,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "socket.connection.setup.timeout.ms": 3000,
            "topic.metadata.refresh.interval.ms": 2000,
            "statistics.interval.ms": 500,
            "log_level": 3,  # not the hundreds of expected disconnects
            "stats_cb": self._stats,
            "error_cb": self._error,
        }
        self.conf.update(conf)
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, int]] = []  # (partition, offset, seq)
        self.failed: list[tuple[int, KafkaError]] = []
        self.client_errors: list[KafkaError] = []
        self.fatal: KafkaError | None = None
        self.eos: dict = {}  # librdkafka's idempotence state from the statistics
        self.n_stats = 0
        self.sent = 0
        self.unflushed: int | None = None
        self.error: BaseException | None = None
        self.error_tb = ""
        self.aborted = threading.Event()  # stop producing and give up on what is in flight

    def _cb(self, err, msg):
        seq = seq_of(msg.value())
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), seq))
            else:
                self.failed.append((seq, err))

    def _stats(self, raw: str) -> None:
        s = json.loads(raw)
        with self.lock:
            self.n_stats += 1
            if s.get("eos"):
                self.eos = s["eos"]

    def _error(self, err: KafkaError) -> None:
        with self.lock:
            self.client_errors.append(err)
            if err.fatal() and self.fatal is None:
                self.fatal = err

    def run(self):
        p = None
        try:
            p = Producer(self.conf)
            self._produce(p)
        except BaseException as e:  # surfaced by the test
            self.error_tb = traceback.format_exc()
            self.error = e.with_traceback(None)  # its frames would keep the client alive
        finally:
            del p

    def _produce(self, p: Producer) -> None:
        start = time.monotonic()
        seq = 0
        while seq < self.n and self.fatal is None and not self.aborted.is_set():
            ahead = seq / self.rate - (time.monotonic() - start)
            if ahead > 0:
                p.poll(min(ahead, 0.05))
                continue
            value = f"{seq:08d}:".encode() + b"v" * (seq % 17)
            try:
                p.produce(self.topic, value=value, partition=seq % PARTITIONS, on_delivery=self._cb)
            except BufferError:
                p.poll(0.05)
                continue
            seq += 1
            self.sent = seq
            p.poll(0)
        deadline = time.monotonic() + 150
        while len(p) and self.fatal is None and not self.aborted.is_set() \
                and time.monotonic() < deadline:
            p.poll(0.2)
        self.unflushed = p.flush(1 if self.fatal or self.aborted.is_set() else 10)
        n_stats = self.n_stats
        deadline = time.monotonic() + 3
        while self.n_stats == n_stats and time.monotonic() < deadline:
            p.poll(0.1)  # the statistics as of the end

    def abort(self) -> None:
        """Make the thread end soon (a failing test must not leave a client retrying)."""
        self.aborted.set()
        self.join(30)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def summary(self) -> str:
        kinds = Counter(str(e) for _, e in self.failed).most_common(3)
        return (f"sent {self.sent}, acked {len(self.acked)}, failed {len(self.failed)} {kinds}, "
                f"eos "
                f"{ {k: self.eos.get(k) for k in ('idemp_state', 'producer_id', 'producer_epoch', 'epoch_cnt')} }, "
                f"client errors {Counter(str(e) for e in self.client_errors).most_common(3)}")


def run_producer(prod: SeqProducer, brokers, timeout: float = 240.0) -> None:
    """Start `prod` (unless started) and wait for it, failing early if a broker died."""
    if prod.ident is None:
        prod.start()
    deadline = time.monotonic() + timeout
    try:
        while prod.is_alive() and time.monotonic() < deadline:
            prod.join(0.5)
            for b in brokers:
                b.assert_alive()
        assert not prod.is_alive(), f"producer not done after {timeout}s: {prod.summary()}"
    finally:
        if prod.is_alive():
            prod.abort()
    assert prod.error is None, f"producer thread died: {prod.error!r}\n{prod.error_tb}"


# ---------------------------------------------------------------------------
# reading back and checking
# ---------------------------------------------------------------------------

def read_log(bootstrap: str, topic: str) -> dict[int, list[tuple[int, int]]]:
    got = consume_partitions(bootstrap, topic, list(range(PARTITIONS)), timeout=120)
    return {p: [(m.offset(), seq_of(m.value())) for m in msgs] for p, msgs in got.items()}


class Problems:
    """Everything wrong with a log read back, given the producer's delivery reports."""

    def __init__(self, log: dict[int, list[tuple[int, int]]], acked, sent: int):
        self.records = sum(len(r) for r in log.values())
        counts = Counter(s for recs in log.values() for _, s in recs)
        where: dict[int, list[tuple[int, int]]] = {}
        for p, recs in log.items():
            for o, s in recs:
                where.setdefault(s, []).append((p, o))
        self.distinct = len(counts)
        self.duplicates = {s: where[s] for s, c in counts.items() if c > 1}
        self.foreign = sorted(s for s in counts if not 0 <= s < sent)
        self.wrong_partition = [(p, o, s) for p, recs in log.items() for o, s in recs
                                if s % PARTITIONS != p]
        self.not_dense = {}
        self.out_of_order = {}
        for p, recs in log.items():
            offsets = [o for o, _ in recs]
            if offsets != list(range(len(recs))):
                i = next((i for i, o in enumerate(offsets) if o != i), len(offsets))
                self.not_dense[p] = (i, offsets[i] if i < len(offsets) else None)
            seqs = [s for _, s in recs]
            bad = [(recs[i - 1], recs[i]) for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]]
            if bad:
                self.out_of_order[p] = (len(bad), bad[:3])
        self.missing = [(p, o, s) for p, o, s in acked if s not in where]
        self.misplaced = [(p, o, s, where[s]) for p, o, s in acked
                          if s in where and (p, o) not in where[s]]

    def any(self) -> bool:
        return bool(self.duplicates or self.foreign or self.wrong_partition or self.not_dense
                    or self.out_of_order or self.missing or self.misplaced)

    def summary(self) -> str:
        dups = list(self.duplicates.items())[:5]
        return (f"{self.records} records, {self.distinct} distinct values; "
                f"{len(self.duplicates)} values more than once, e.g. (value: [(partition, offset)...]) "
                f"{dups}; {len(self.missing)} acknowledged values missing, e.g. (partition, offset, "
                f"value) {self.missing[:5]}; {len(self.misplaced)} acknowledged values not at their "
                f"acknowledged offset {self.misplaced[:5]}; out of produce order (count, first "
                f"pairs) {self.out_of_order}; offsets not dense from 0 (index, offset) "
                f"{self.not_dense}; in the wrong partition {self.wrong_partition[:5]}; never "
                f"produced {self.foreign[:5]}")


# ---------------------------------------------------------------------------
# end to end through the chaos proxy
# ---------------------------------------------------------------------------

def check_chaos_happened(proxy: ChaosProxy) -> None:
    st = proxy.stats()
    assert st["kills"] >= MIN_KILLS, f"the proxy killed only {st['kills']} connections: {st}"
    assert st["dropped_responses"] >= MIN_DROPPED, \
        f"the proxy dropped only {st['dropped_responses']} Produce responses: {st}"
    # The case idempotence is for: a batch sent again after the broker had appended it.
    assert st["written_batches_resent"] >= 1, \
        f"the producer never resent a batch the broker had executed: {st}"
    assert st["parse_errors"] == 0, st


def check_idempotent_producer(prod: SeqProducer) -> None:
    assert prod.fatal is None, f"fatal producer error {prod.fatal}: {prod.summary()}"
    assert prod.eos.get("idemp_state") == "Assigned" and prod.eos.get("producer_id", -1) >= 0, \
        f"the producer never got a producer id: {prod.summary()}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_idempotent_producer_through_chaos_proxy(strata_factory, proxies):
    b, proxy = broker_behind_proxy(strata_factory, proxies, "idem-chaos", seed="idem-chaos")
    topic = unique_topic("idem-chaos")
    create_topic(proxy.address, topic, partitions=PARTITIONS)

    prod = SeqProducer(proxy.address, topic, N_RECORDS, RATE)
    proxy.chaos = True
    t0 = time.monotonic()
    run_producer(prod, [b])
    proxy.chaos = False
    print(f"idempotent through chaos: {time.monotonic() - t0:.1f}s, proxy {proxy.stats()}, "
          f"producer {prod.summary()}")

    check_idempotent_producer(prod)
    assert not prod.failed and prod.unflushed == 0 and len(prod.acked) == N_RECORDS, \
        f"not every value was acknowledged (no broker restart here, retries unlimited): {prod.summary()}"
    check_chaos_happened(proxy)

    problems = Problems(read_log(proxy.address, topic), prod.acked, prod.sent)
    assert not problems.any(), f"after {proxy.stats()}: {problems.summary()}"
    assert problems.records == N_RECORDS
    b.assert_alive()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_idempotent_producer_broker_kill9_and_chaos(strata_factory, proxies):
    """Producer state rebuilt from the log after SIGKILL: batches written before the crash whose
    acknowledgement was lost (killed broker, killed connection, dropped response) and that the
    producer sends again after the restart must not be appended twice."""
    b, proxy = broker_behind_proxy(strata_factory, proxies, "idem-kill9", seed="idem-kill9")
    topic = unique_topic("idem-kill9")
    create_topic(proxy.address, topic, partitions=PARTITIONS)
    rng = random.Random("idem-kill9")

    kills = 3
    prod = SeqProducer(proxy.address, topic, N_RECORDS, RATE, **{"compression.type": "lz4"})
    proxy.chaos = True
    t0 = time.monotonic()
    prod.start()
    acked_at_kill = []
    restart_s = []
    try:
        for k in range(1, kills + 1):
            wait_until(lambda: prod.acked_count() >= N_RECORDS * k // (kills + 1) or not prod.is_alive(),
                       timeout=90, interval=0.05, msg=f"acknowledgements before kill {k}")
            assert prod.is_alive(), f"producer finished early / died: {prod.error!r} {prod.summary()}"
            time.sleep(rng.uniform(0, 0.3))
            b.kill()
            acked_at_kill.append(prod.acked_count())
            t = time.monotonic()
            b.start()
            restart_s.append(round(time.monotonic() - t, 2))
        run_producer(prod, [b])
    finally:
        proxy.chaos = False
        if prod.is_alive():
            prod.abort()
    print(f"idempotent, {kills} x kill -9 + chaos: {time.monotonic() - t0:.1f}s, acked at kills "
          f"{acked_at_kill}, restart seconds {restart_s}, proxy {proxy.stats()}, producer {prod.summary()}")

    check_idempotent_producer(prod)
    # Retries are unlimited and the message timeout (120 s) far longer than a restart: a broker
    # that keeps its producer state never gives the client a reason to give up on a value.
    assert not prod.failed and prod.unflushed == 0, \
        f"values not acknowledged across the restarts: {prod.summary()}"
    assert len(prod.acked) == N_RECORDS
    check_chaos_happened(proxy)

    log = read_log(proxy.address, topic)
    problems = Problems(log, prod.acked, prod.sent)
    assert not problems.any(), f"after {kills} kill -9 and {proxy.stats()}: {problems.summary()}"
    assert problems.records == N_RECORDS

    # The same log after a graceful restart.
    b.restart()
    assert read_log(proxy.address, topic) == log, "log changed across a graceful restart"


@pytest.mark.timeout(180)
def test_chaos_proxy_makes_duplicates_without_idempotence(strata_factory, proxies):
    """Negative control for the two tests above: the same proxy, producer and checks with
    enable.idempotence=False. Retries of Produce requests whose response the proxy dropped
    are appended again, and the checks must see it."""
    b, proxy = broker_behind_proxy(strata_factory, proxies, "no-idem-chaos", seed="no-idem-chaos")
    topic = unique_topic("no-idem-chaos")
    create_topic(proxy.address, topic, partitions=PARTITIONS)

    n = 30_000
    prod = SeqProducer(proxy.address, topic, n, RATE, idempotence=False)
    proxy.chaos = True
    run_producer(prod, [b])
    proxy.chaos = False
    problems = Problems(read_log(proxy.address, topic), prod.acked, prod.sent)
    print(f"idempotence off through chaos: proxy {proxy.stats()}, producer {prod.summary()}; "
          f"{problems.summary()}")
    assert proxy.dropped_responses >= 1, proxy.stats()
    assert problems.duplicates, (f"no duplicates without idempotence although {proxy.stats()}: the "
                                 f"proxy or the checks are not doing their job; {problems.summary()}")
    assert problems.records > problems.distinct


# ---------------------------------------------------------------------------
# raw wire
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wb(module_strata_factory):
    """The broker of the raw-wire tests that need no restart."""
    return module_strata_factory(name="idem-wire")


def init_pid_versions(conn: w.Conn) -> list[int]:
    _, apis = w.api_versions(conn, 0)
    assert w.API_INIT_PRODUCER_ID in apis, \
        f"ApiVersions does not advertise InitProducerId (22): {sorted(apis)}"
    lo, hi = apis[w.API_INIT_PRODUCER_ID]
    assert lo == 0 and hi >= 5, f"InitProducerId versions {lo}..{hi}, expected 0..5"
    return list(range(0, 6))


def new_pid(conn: w.Conn, version: int = 0) -> int:
    r = w.init_producer_id(conn, version)
    assert r["error_code"] == 0, f"InitProducerId v{version} (transactional id null) -> {r}"
    assert r["producer_id"] >= 0 and r["producer_epoch"] == 0, f"InitProducerId v{version} -> {r}"
    return r["producer_id"]


def test_init_producer_id_distinct_across_restarts(strata_factory):
    nb = strata_factory(name="pid-alloc")
    seen: list[int] = []

    def allocate(what: str, calls_per_version: int = 4):
        with w.Conn(nb.bootstrap) as c:
            for v in init_pid_versions(c):
                for _ in range(calls_per_version):
                    seen.append(new_pid(c, v))
        with w.Conn(nb.bootstrap) as c1, w.Conn(nb.bootstrap) as c2:  # two connections
            seen.extend([new_pid(c1), new_pid(c2), new_pid(c1, 4), new_pid(c2, 4)])
        dups = [p for p, n in Counter(seen).items() if n > 1]
        assert not dups, f"{what}: producer ids handed out twice: {dups} (all: {seen})"

    allocate("first start")
    first = len(seen)
    nb.kill()
    nb.start()
    allocate("after kill -9")
    nb.restart()
    allocate("after a graceful restart")
    nb.kill()
    nb.start()
    allocate("after a second kill -9")
    assert len(seen) == 4 * first
    # A real idempotent producer (confluent-kafka, its own InitProducerId version) gets a
    # fresh one too, and its records go in.
    topic = unique_topic("pid-alloc")
    create_topic(nb.bootstrap, topic, partitions=PARTITIONS)
    prod = SeqProducer(nb.bootstrap, topic, 100, 10_000)
    run_producer(prod, [nb])
    check_idempotent_producer(prod)
    assert len(prod.acked) == 100, prod.summary()
    assert prod.eos["producer_id"] not in seen, f"confluent-kafka got a used producer id: {prod.summary()}"
    roundtrip_ok(nb.bootstrap)


def ipid_batch(values, pid: int, epoch: int, seq: int) -> bytes:
    return w.record_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def vals(tag: str, seq: int, n: int) -> list[bytes]:
    return [f"{tag}-{seq + i}".encode() for i in range(n)]


class WireProducer:
    """Idempotent batches of one producer id on one raw connection."""

    def __init__(self, conn: w.Conn, version: int, topic: str, pid: int, tag: str):
        self.conn, self.version, self.topic, self.pid, self.tag = conn, version, topic, pid, tag

    def send(self, partition: int, epoch: int, seq: int, n: int = 5) -> dict:
        values = vals(f"{self.tag}-e{epoch}", seq, n)
        return w.produce(self.conn, self.version, self.topic, partition,
                         ipid_batch(values, self.pid, epoch, seq))

    def ok(self, partition: int, epoch: int, seq: int, n: int = 5, base: int | None = None,
           what: str = "") -> int:
        r = self.send(partition, epoch, seq, n)
        assert r["error_code"] == 0, f"{what}: pid {self.pid} epoch {epoch} seq {seq}..{seq + n - 1} -> {r}"
        if base is not None:
            assert r["base_offset"] == base, \
                f"{what}: pid {self.pid} epoch {epoch} seq {seq}..{seq + n - 1} -> base offset " \
                f"{r['base_offset']}, expected {base}"
        return r["base_offset"]

    def err(self, partition: int, epoch: int, seq: int, code: int, n: int = 5, what: str = "") -> None:
        r = self.send(partition, epoch, seq, n)
        assert r["error_code"] == code, \
            f"{what}: pid {self.pid} epoch {epoch} seq {seq}..{seq + n - 1} -> {r}, expected error {code}"


def log_end(bootstrap: str, topic: str, partition: int) -> int:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]
    finally:
        c.close()


def read_values(bootstrap: str, topic: str, partitions) -> dict[int, list[tuple[int, bytes]]]:
    got = consume_partitions(bootstrap, topic, list(partitions), timeout=30)
    return {p: [(m.offset(), m.value()) for m in msgs] for p, msgs in got.items()}


def test_produce_sequence_rules(wb):
    topic = unique_topic("idem-wire")
    create_topic(wb.bootstrap, topic, partitions=2)
    expected: dict[int, list[bytes]] = {0: [], 1: []}
    with w.Conn(wb.bootstrap) as c:
        init_pid_versions(c)
        _, apis = w.api_versions(c, 0)
        v = w.pick_produce_version(apis)
        pa = WireProducer(c, v, topic, new_pid(c), "a")

        def ok(p, epoch, seq, n=5, base=None, what="", new=True):
            off = pa.ok(p, epoch, seq, n, base, what)
            if new:
                expected[p].extend(vals(f"a-e{epoch}", seq, n))
            return off

        ok(0, 0, 0, base=0, what="first batch")
        ok(0, 0, 5, base=5, what="next batch")
        # Duplicates of the last batch and of an earlier one still among the last 5.
        ok(0, 0, 0, base=0, what="resent seq 0..4", new=False)
        ok(0, 0, 5, base=5, what="resent seq 5..9", new=False)
        assert log_end(wb.bootstrap, topic, 0) == 10, "a duplicate batch was appended again"
        # Neither the next sequence nor a duplicate: a gap, an overlap, the same first sequence
        # with a different last one.
        pa.err(0, 0, 20, OUT_OF_ORDER_SEQUENCE_NUMBER, what="gap (10 expected)")
        pa.err(0, 0, 3, OUT_OF_ORDER_SEQUENCE_NUMBER, what="overlap with 0..9")
        pa.err(0, 0, 5, OUT_OF_ORDER_SEQUENCE_NUMBER, n=3, what="seq 5..7 (5..9 was written)")
        pa.err(0, 0, 11, OUT_OF_ORDER_SEQUENCE_NUMBER, what="gap of one")
        assert log_end(wb.bootstrap, topic, 0) == 10, "a refused batch was appended"
        # The rejections left the state alone: 10 is still next.
        for i, seq in enumerate(range(10, 35, 5)):  # 5 more batches: 10, 15, 20, 25, 30
            ok(0, 0, seq, base=10 + 5 * i, what="in sequence after the refusals")
        # The last 5 batches are now those from 10 to 30: each is a duplicate, 5..9 no longer is.
        for seq in (10, 20, 30):
            ok(0, 0, seq, base=seq, what="duplicate among the last 5", new=False)
        pa.err(0, 0, 5, OUT_OF_ORDER_SEQUENCE_NUMBER, what="batch 5..9, older than the last 5")
        pa.err(0, 0, 0, OUT_OF_ORDER_SEQUENCE_NUMBER, what="batch 0..4, older than the last 5")
        assert log_end(wb.bootstrap, topic, 0) == 35

        # A non-idempotent batch in between does not disturb the producer's state.
        r = w.produce(c, v, topic, 0, w.record_batch([b"plain"]))
        assert r["error_code"] == 0 and r["base_offset"] == 35, r
        expected[0].append(b"plain")

        # Epochs: a new epoch must start at sequence 0; then the old epoch is fenced.
        pa.err(0, 1, 3, OUT_OF_ORDER_SEQUENCE_NUMBER, what="epoch 1 starting at seq 3")
        ok(0, 1, 0, base=36, what="epoch 1 from seq 0")
        pa.err(0, 0, 35, INVALID_PRODUCER_EPOCH, what="epoch 0 after epoch 1 (next seq of epoch 0)")
        pa.err(0, 0, 30, INVALID_PRODUCER_EPOCH, what="epoch 0 after epoch 1 (its last batch again)")
        ok(0, 1, 0, base=36, what="epoch 1 seq 0..4 resent", new=False)
        ok(0, 1, 5, base=41, what="epoch 1 continues")
        pa.err(0, 1, 20, OUT_OF_ORDER_SEQUENCE_NUMBER, what="epoch 1 gap")
        assert log_end(wb.bootstrap, topic, 0) == 46

        # State is per partition: partition 1 has never seen this producer, any sequence goes.
        ok(1, 1, 77, base=0, what="producer unknown to partition 1 at seq 77")
        ok(1, 1, 82, base=5, what="partition 1 continues at 82")
        ok(1, 1, 77, base=0, what="partition 1 duplicate", new=False)
        pa.err(1, 1, 0, OUT_OF_ORDER_SEQUENCE_NUMBER, what="partition 1 back to seq 0")
        pa.err(1, 0, 87, INVALID_PRODUCER_EPOCH, what="partition 1, epoch 0 after epoch 1")

        # Another producer id, unknown everywhere, at a high sequence on partition 0.
        with w.Conn(wb.bootstrap) as c2:
            pb = WireProducer(c2, v, topic, new_pid(c2), "b")
            assert pb.pid != pa.pid
            assert pb.ok(0, 0, 1000, base=46, what="new producer at seq 1000") == 46
            expected[0].extend(vals("b-e0", 1000, 5))
            assert pb.ok(0, 0, 1000, base=46, what="new producer duplicate") == 46
            # Interleaving does not confuse the two producers' states.
            ok(0, 1, 10, base=51, what="producer a after producer b")
            assert pb.ok(0, 0, 1005, base=56, what="producer b after producer a") == 56
            expected[0].extend(vals("b-e0", 1005, 5))
            ok(0, 1, 10, base=51, what="producer a duplicate after b", new=False)

    got = read_values(wb.bootstrap, topic, [0, 1])
    for p in (0, 1):
        assert [val for _, val in got[p]] == expected[p], f"partition {p} holds {got[p]}"
        assert [o for o, _ in got[p]] == list(range(len(expected[p])))
    roundtrip_ok(wb.bootstrap)
    wb.assert_alive()


def test_producer_state_rebuilt_after_restart(strata_factory):
    nb = strata_factory(name="idem-restart")
    topic = unique_topic("idem-restart")
    create_topic(nb.bootstrap, topic, partitions=1)
    with w.Conn(nb.bootstrap) as c:
        init_pid_versions(c)
        _, apis = w.api_versions(c, 0)
        v = w.pick_produce_version(apis)
        pid_a, pid_b = new_pid(c), new_pid(c)
    expected: list[bytes] = []
    batches_a: list[tuple[int, int]] = []  # producer a's batches (first sequence, base offset)
    rng = random.Random("idem-restart")

    def connect():
        c = w.Conn(nb.bootstrap)
        return c, WireProducer(c, v, topic, pid_a, "a"), WireProducer(c, v, topic, pid_b, "b")

    def a_next(pa, what):
        seq = batches_a[-1][0] + 5 if batches_a else 0
        base = pa.ok(0, 0, seq, base=len(expected), what=what)
        batches_a.append((seq, base))
        expected.extend(vals("a-e0", seq, 5))

    c, pa, pb = connect()
    with c:
        for _ in range(7):
            a_next(pa, "before the restarts")
        pb.ok(0, 0, 0, base=len(expected), what="b, epoch 0")
        expected.extend(vals("b-e0", 0, 5))
        b_last = (pb.ok(0, 2, 0, base=len(expected), what="b, epoch 2"), 0)
        expected.extend(vals("b-e2", 0, 5))

    for how in ("kill -9", "graceful restart", "second kill -9"):
        if "kill" in how:
            nb.kill()
            nb.start()
        else:
            nb.restart()
        end = len(expected)
        c, pa, pb = connect()
        with c:
            # The last batch again: a duplicate, answered with its original base offset.
            seq, base = batches_a[-1]
            pa.ok(0, 0, seq, base=base, what=f"duplicate of the last batch after {how}")
            # So is each of the 4 before it (in any order): the state is rebuilt from the log,
            # with the last 5 batches (Kafka itself keeps only the last one in its snapshots;
            # a client with 5 requests in flight may resend any of them after a restart).
            for seq, base in rng.sample(batches_a[-5:-1], 4):
                pa.ok(0, 0, seq, base=base, what=f"duplicate of one of the last 5 batches after {how}")
            # The 6th last is neither a duplicate nor in sequence.
            pa.err(0, 0, batches_a[-6][0], OUT_OF_ORDER_SEQUENCE_NUMBER,
                   what=f"6th last batch after {how}")
            pa.err(0, 0, batches_a[-1][0] + 50, OUT_OF_ORDER_SEQUENCE_NUMBER, what=f"gap after {how}")
            pb.err(0, 1, b_last[1] + 5, INVALID_PRODUCER_EPOCH, what=f"old epoch after {how}")
            pb.ok(0, 2, b_last[1], base=b_last[0], what=f"b duplicate after {how}")
            assert log_end(nb.bootstrap, topic, 0) == end, f"a duplicate was appended after {how}"
            for _ in range(3):
                a_next(pa, f"in sequence after {how}")
            b_last = (pb.ok(0, 2, b_last[1] + 5, base=len(expected), what=f"b continues after {how}"),
                      b_last[1] + 5)
            expected.extend(vals("b-e2", b_last[1], 5))

    got = read_values(nb.bootstrap, topic, [0])[0]
    assert [val for _, val in got] == expected
    assert [o for o, _ in got] == list(range(len(expected)))
    roundtrip_ok(nb.bootstrap)
