"""Cluster mode: three nodes that are each a broker and a metadata voter, on an S3-compatible
server (moto), driven by confluent-kafka. Partitions are spread over the brokers, clients are
routed to leaders, and a broker that dies or is paused is fenced and its partitions come back
on the others with every acknowledged record, exactly once, in order."""

from __future__ import annotations

import collections
import os
import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import kafka_wire as kw
from cluster import Cluster, Load
from helpers import consume_partitions, create_topic, produce_all, unique_topic, wait_until
from txn_util import FAST_RECONNECT, group_offsets, read_topic, values, watermarks

PARTITIONS = 6


def read_all(c: Cluster, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    got = consume_partitions(c.bootstrap, topic, list(range(partitions)), timeout=60)
    return {p: [(m.offset(), m.value()) for m in msgs] for p, msgs in got.items()}


def assert_exactly_once(c: Cluster, topic: str, partitions: int, acked) -> None:
    """Every acknowledged record is in the log once, at its acknowledged offset; offsets are
    dense; no value appears twice."""
    log = read_all(c, topic, partitions)
    for p in range(partitions):
        offsets = [o for o, _ in log[p]]
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not dense"
        values = [v for _, v in log[p]]
        dups = [v for v, n in collections.Counter(values).items() if n > 1]
        assert not dups, f"partition {p}: duplicated records {dups[:5]}"
        at = dict(log[p])
        for pp, offset, value in acked:
            if pp == p:
                assert at.get(offset) == value, (
                    f"partition {p}: acknowledged {value!r} at {offset}, log has {at.get(offset)!r}")


def await_writable(bootstrap: str, topic: str, partitions, since: float) -> dict[int, float]:
    """Writes one record to each partition; returns the seconds from `since` to its ack."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 30000, "retry.backoff.ms": 50,
                  "retry.backoff.max.ms": 100})
    done: dict[int, float] = {}

    def cb(err, msg):
        assert err is None, f"probe to partition {msg.partition()} failed: {err}"
        done[msg.partition()] = time.monotonic() - since

    for part in partitions:
        p.produce(topic, value=b"probe", partition=part, on_delivery=cb)
    assert p.flush(30) == 0, "probes undelivered"
    return done


@pytest.fixture
def cluster(strata_factory, moto_s3):
    return Cluster(strata_factory, moto_s3)


@pytest.mark.timeout(180)
def test_partitions_are_spread_and_clients_follow_their_leaders(strata_factory, moto_s3):
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-a"}
    c = Cluster(strata_factory, moto_s3, racks=racks)
    topic = unique_topic("spread")
    create_topic(c.nodes[1].bootstrap, topic, partitions=2 * PARTITIONS)
    views = [c.metadata(via=i, topic=topic) for i in (1, 2, 3)]
    assert {v.cluster_id for v in views} == {views[0].cluster_id}, "one cluster id everywhere"
    for v in views:
        assert sorted(v.brokers) == [1, 2, 3]
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    described = admin.describe_cluster().result(15)
    assert {n.id: n.rack for n in described.nodes} == racks
    leaders = c.leaders(topic, via=1)
    assert all(c.leaders(topic, via=i) == leaders for i in (2, 3)), "every node agrees"
    assert collections.Counter(leaders.values()) == {1: 4, 2: 4, 3: 4}, leaders

    # An idempotent producer bootstrapped on one node writes to every leader.
    recs = [{"value": f"v{i:05d}".encode(), "partition": i % (2 * PARTITIONS)}
            for i in range(12_000)]
    reps = produce_all(c.nodes[2].bootstrap, topic, recs, **{"enable.idempotence": True})
    assert not [r for r in reps if r.error], "deliveries failed"
    assert_exactly_once(c, topic, 2 * PARTITIONS,
                        [(r.partition, r.offset, r.value) for r in reps])

    # A consumer group, coordinated by whichever broker leads its offsets partition.
    group = unique_topic("g")
    consumer = Consumer({"bootstrap.servers": c.nodes[3].bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = collections.Counter()
    deadline = time.monotonic() + 60
    while sum(seen.values()) < len(recs) and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            seen[m.value()] += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    assert len(seen) == len(recs) and set(seen.values()) == {1}, "each record once"
    other = Consumer({"bootstrap.servers": c.nodes[1].bootstrap, "group.id": group})
    committed = other.committed([TopicPartition(topic, p) for p in range(2 * PARTITIONS)],
                                timeout=15)
    other.close()
    assert [tp.offset for tp in committed] == [1000] * (2 * PARTITIONS)

    # A broker that does not lead a partition refuses its writes with NOT_LEADER_OR_FOLLOWER.
    not_leader = next(i for i in (1, 2, 3) if i != leaders[0])
    with kw.Conn(c.nodes[not_leader].bootstrap) as conn:
        _, apis = kw.parse_api_versions(conn.response(conn.request(kw.API_VERSIONS, 0, b"")), 0)
        res = kw.produce(conn, kw.pick_produce_version(apis), topic, 0,
                         kw.record_batch([b"misrouted"]))
    assert res["error_code"] == 6, res


@pytest.mark.timeout(240)
@pytest.mark.parametrize("wal", ["object", "file"])
def test_a_killed_broker_fails_over_with_nothing_acknowledged_lost(strata_factory, moto_s3, wal):
    c = Cluster(strata_factory, moto_s3, wal=wal)
    topic = unique_topic(f"failover-{wal}")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS)
    controller = c.active_controller()
    leaders = c.leaders(topic)
    victim = next(i for i in (1, 2, 3) if i != controller and i in leaders.values())
    lost = sorted(p for p, leader in leaders.items() if leader == victim)

    load = Load(c.bootstrap, topic, PARTITIONS).start()
    wait_until(lambda: len(load.acked) > 3000, timeout=30, msg="load running")
    killed = time.monotonic()
    c.nodes[victim].kill()
    back = await_writable(c.bootstrap, topic, lost, since=killed)
    print(f"\nfailover ({wal} WAL): partitions {lost} of broker {victim} accepted writes again "
          f"{', '.join(f'{back[p]:.2f}s' for p in lost)} after SIGKILL")
    assert max(back.values()) <= 5.0, f"failover took {back}"
    # The load goes on over the moved partitions.
    moved = len(load.acked)
    wait_until(lambda: sum(1 for p, _, _ in load.acked[moved:] if p in lost) > 100,
               timeout=30, msg="load on the moved partitions")
    load.stop()
    assert not load.errors, f"producer errors: {load.errors[:3]}"

    after = c.leaders(topic)
    assert victim not in after.values(), after
    assert victim not in c.metadata().brokers
    assert_exactly_once(c, topic, PARTITIONS, load.acked)

    # The killed broker comes back as a new incarnation, empty-handed, and serves again.
    c.nodes[victim].start()
    wait_until(lambda: victim in c.metadata().brokers, timeout=30, msg="the broker back")
    extra = topic + "-again"
    create_topic(c.nodes[victim].bootstrap, extra, partitions=PARTITIONS)
    assert victim in c.leaders(extra).values()
    reps = produce_all(c.nodes[victim].bootstrap, extra,
                       [{"value": b"x", "partition": p} for p in range(PARTITIONS)])
    assert not [r for r in reps if r.error]


@pytest.mark.timeout(180)
def test_a_paused_broker_is_fenced_and_acknowledges_nothing_after(strata_factory, moto_s3):
    # Nothing is uploaded during the test: every acknowledged record is only in the WALs, and
    # the paused broker's are found by its rescuers, not in objects.
    c = Cluster(strata_factory, moto_s3, upload_interval_ms=600_000)
    topic = unique_topic("zombie")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS)
    before = produce_all(c.bootstrap, topic,
                         [{"value": f"b{i}".encode(), "partition": i % PARTITIONS}
                          for i in range(600)])
    controller = c.active_controller()
    leaders = c.leaders(topic)
    zombie = next(i for i in (1, 2, 3) if i != controller and i in leaders.values())
    part = next(p for p, leader in leaders.items() if leader == zombie)
    node = c.nodes[zombie]
    conn = kw.Conn(node.bootstrap, timeout=30)
    _, apis = kw.parse_api_versions(conn.response(conn.request(kw.API_VERSIONS, 0, b"")), 0)
    version = kw.pick_produce_version(apis)

    os.kill(node.pid, signal.SIGSTOP)
    try:
        others = [i for i in (1, 2, 3) if i != zombie]
        wait_until(lambda: c.leaders(topic, via=others[0])[part] != zombie, timeout=20,
                   msg="the paused broker's partition to move")
        # Its partitions take writes elsewhere: the rescue is complete.
        survivors = ",".join(c.nodes[i].bootstrap for i in others)
        await_writable(survivors, topic, [part], since=time.monotonic())
        # Sits in the socket until the broker runs again.
        corr = conn.request(kw.API_PRODUCE, version,
                            kw.produce_body(topic, part, kw.record_batch([b"zombie"])))
    finally:
        os.kill(node.pid, signal.SIGCONT)
    try:
        res = kw.parse_produce_response(conn.response(corr), version)[(topic, part)]
        assert res["error_code"] != 0, f"the fenced broker acknowledged a write: {res}"
    except (ConnectionError, OSError):
        pass  # closed without an answer: not acknowledged either
    conn.close()
    node.proc.wait(30)
    assert node.proc.returncode != 0
    assert "the controller fenced this broker" in node.log_tail(200)

    log = read_all(c, topic, PARTITIONS)
    assert all(v != b"zombie" for p in log for _, v in log[p])
    assert_exactly_once(c, topic, PARTITIONS, [(r.partition, r.offset, r.value) for r in before])
    assert not [r for r in produce_all(c.bootstrap, topic, [{"value": b"after", "partition": part}])
                if r.error]


@pytest.mark.timeout(180)
def test_losing_the_active_controller_keeps_the_cluster_working(cluster):
    c = cluster
    topic = unique_topic("ctl")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS)
    load = Load(c.bootstrap, topic, PARTITIONS).start()
    wait_until(lambda: len(load.acked) > 3000, timeout=30, msg="load running")
    old = c.active_controller()
    killed = time.monotonic()
    c.nodes[old].kill()
    new = c.active_controller(timeout=15)
    assert new != old
    elected = time.monotonic() - killed
    # Metadata operations go on under the new leader, through any node.
    create_topic(c.bootstrap, topic + "-after", partitions=2)
    created = time.monotonic() - killed
    print(f"\ncontroller {old} killed: node {new} leads after {elected:.2f}s, "
          f"a topic was created {created:.2f}s after the kill")
    time.sleep(1)
    load.stop()
    assert not load.errors, f"producer errors: {load.errors[:3]}"
    assert old not in c.leaders(topic).values()
    assert_exactly_once(c, topic, PARTITIONS, load.acked)


@pytest.mark.timeout(180)
def test_a_broker_that_does_not_vote_joins_and_leads_new_partitions(cluster):
    c = cluster
    fourth = c.add_broker(4)
    wait_until(lambda: sorted(c.metadata().brokers) == [1, 2, 3, 4], timeout=15,
               msg="four brokers")
    topic = unique_topic("four")
    create_topic(fourth.bootstrap, topic, partitions=8)
    leaders = c.leaders(topic)
    assert collections.Counter(leaders.values()) == {1: 2, 2: 2, 3: 2, 4: 2}, leaders
    reps = produce_all(fourth.bootstrap, topic,
                       [{"value": f"f{i}".encode(), "partition": i % 8} for i in range(800)],
                       **{"enable.idempotence": True})
    assert not [r for r in reps if r.error]
    assert_exactly_once(c, topic, 8, [(r.partition, r.offset, r.value) for r in reps])
    # It does not vote: the quorum does not count on it, and a dead follower fails over too.
    fourth.kill()
    back = await_writable(c.bootstrap, topic, [p for p, n in leaders.items() if n == 4],
                          since=time.monotonic())
    assert len(back) == 2
    assert_exactly_once(c, topic, 8, [(r.partition, r.offset, r.value) for r in reps])


def strata_cli(*args) -> str:
    from conftest import STRATA_BIN
    import subprocess
    out = subprocess.run([str(STRATA_BIN), *map(str, args)], capture_output=True, text=True,
                         timeout=150)
    assert out.returncode == 0, f"strata {args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


@pytest.mark.timeout(300)
def test_reassignment_under_load_loses_and_duplicates_nothing(cluster):
    c = cluster
    topic = unique_topic("move")
    parts = 60
    create_topic(c.bootstrap, topic, partitions=parts)
    load = Load(c.bootstrap, topic, parts).start()
    wait_until(lambda: len(load.acked) > 6000, timeout=60, msg="load running")
    # librdkafka waits topic.metadata.refresh.fast.interval.ms (100 ms by default) before it
    # asks again who leads; 10 ms keeps the client's own backoff out of the measure.
    probe = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0,
                      "retry.backoff.ms": 10, "retry.backoff.max.ms": 50,
                      "topic.metadata.refresh.fast.interval.ms": 10})
    probe.list_topics(topic, timeout=10)

    # One partition at a time: from the request to the metadata naming the new leader (the
    # hand-over done), and to the new leader's first acknowledgement, which also waits for the
    # object WAL's window (250 ms by default) like any acks=all write.
    times, handed_over = [], []
    for i in range(12):
        p = (i * 7) % parts
        leader = c.leaders(topic)[p]
        target = leader % 3 + 1
        acked = {}
        started = time.monotonic()
        # Returns once the metadata names the target as leader.
        strata_cli("reassign", "--bootstrap", c.nodes[target].bootstrap, "--topic", topic,
                   "--partition", p, "--to", target)
        handed_over.append(time.monotonic() - started)
        probe.produce(topic, value=b"probe", partition=p,
                      on_delivery=lambda e, m: acked.setdefault("t", (e, time.monotonic())))
        probe.flush(30)
        err, at = acked["t"]
        assert err is None, err
        times.append(at - started)
        assert c.leaders(topic, via=target)[p] == target
    for what, ts in (("metadata names the new leader", handed_over),
                     ("first write acknowledged by the new leader", times)):
        print(f"\nreassign one partition under load, request to {what}: "
              f"p50 {percentile(ts, 0.5) * 1000:.0f} ms, p99 {percentile(ts, 0.99) * 1000:.0f} ms, "
              f"max {max(ts) * 1000:.0f} ms ({len(ts)} moves)")

    # Fifty at once, in one request, each to another broker.
    leaders = c.leaders(topic)
    moving = list(range(50))
    targets = [leaders[p] % 3 + 1 for p in moving]
    started = time.monotonic()
    out = strata_cli("reassign", "--bootstrap", c.bootstrap.split(",")[0], "--topic", topic,
                     "--partition", ",".join(map(str, moving)),
                     "--to", ",".join(map(str, targets)))
    took = time.monotonic() - started
    assert "50 moves recorded, 0 refused" in out, out
    after = c.leaders(topic, via=min(c.live()))
    assert [after[p] for p in moving] == targets
    print(f"reassign 50 partitions at once under load: all led by their targets {took:.2f}s "
          f"after the request")
    moved = len(load.acked)
    wait_until(lambda: len(load.acked) > moved + 3000, timeout=30, msg="load after the moves")

    # And back, still under load: a partition returning to a broker that led it before goes on
    # from what the others wrote meanwhile (its offsets, its producers' sequences).
    back = [leaders[p] for p in moving]
    strata_cli("reassign", "--bootstrap", c.bootstrap.split(",")[0], "--topic", topic,
               "--partition", ",".join(map(str, moving)), "--to", ",".join(map(str, back)))
    assert [c.leaders(topic, via=min(c.live()))[p] for p in moving] == back
    moved = len(load.acked)
    wait_until(lambda: len(load.acked) > moved + 3000, timeout=30, msg="load after moving back")
    load.stop()
    assert not load.errors, f"producer errors: {load.errors[:3]}"
    assert_exactly_once(c, topic, parts, load.acked)


@pytest.mark.timeout(300)
def test_scale_out_onto_a_new_broker_then_drain_one_and_stop_it_then_sigterm_another(cluster):
    c = cluster
    topic = unique_topic("scale")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS * 2)
    load = Load(c.bootstrap, topic, PARTITIONS * 2).start()
    wait_until(lambda: len(load.acked) > 3000, timeout=30, msg="load running")
    fourth = c.add_broker(4)
    wait_until(lambda: 4 in c.metadata().brokers, timeout=15, msg="broker 4")
    # Move a quarter of the load onto it.
    onto = [p for p in range(0, PARTITIONS * 2, 4)]
    strata_cli("reassign", "--bootstrap", fourth.bootstrap, "--topic", topic,
               "--partition", ",".join(map(str, onto)), "--to", 4)
    assert sorted(p for p, n in c.leaders(topic).items() if n == 4) == onto
    before = len(load.acked)
    wait_until(lambda: sum(1 for p, _, _ in load.acked[before:] if p in onto) > 500,
               timeout=30, msg="load on the new broker")

    # Drain a broker that is not the active controller, then stop it.
    controller = c.active_controller()
    victim = next(i for i in (1, 2, 3) if i != controller)
    out = strata_cli("drain", "--bootstrap", c.nodes[controller].bootstrap, "--broker", victim)
    assert "done in" in out, out
    md = c.metadata(via=controller, topic=None)
    led = [p.leader for t in md.topics.values() for p in t.partitions.values()]
    assert victim not in led, "the drained broker still leads partitions"
    assert c.nodes[victim].stop() == 0
    before = len(load.acked)
    wait_until(lambda: len(load.acked) > before + 3000, timeout=30, msg="load after the drain")

    # A broker stopped with SIGTERM and no drain hands its partitions over itself before it
    # exits (controlled shutdown): right after, the metadata already names other leaders,
    # where a failover would still name it for a session.
    handed = sorted(p for p, n in c.leaders(topic).items() if n == 4)
    assert handed
    stopping = time.monotonic()
    assert fourth.stop() == 0
    exited = time.monotonic() - stopping
    assert 4 not in c.leaders(topic).values()
    assert "controlled shutdown: every partition handed over" in fourth.log_tail(100)
    back = await_writable(c.bootstrap, topic, handed, since=stopping)
    print(f"\ncontrolled shutdown: broker 4 exited {exited:.2f}s after SIGTERM; its partitions "
          f"{handed} took writes elsewhere {max(back.values()):.2f}s after it")
    before = len(load.acked)
    wait_until(lambda: sum(1 for p, _, _ in load.acked[before:] if p in handed) > 300,
               timeout=30, msg="load on the handed-over partitions")
    load.stop()
    assert not load.errors, f"producer errors: {load.errors[:3]}"
    assert_exactly_once(c, topic, PARTITIONS * 2, load.acked)


@pytest.mark.timeout(180)
def test_the_group_coordinator_fails_over_with_its_offsets_partition(cluster):
    c = cluster
    topic = unique_topic("grp")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS)
    reps = produce_all(c.bootstrap, topic, [{"value": f"g{i}".encode(), "partition": i % PARTITIONS}
                                            for i in range(1200)])
    assert not [r for r in reps if r.error]
    group = unique_topic("group")
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 600 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            seen += 1
    consumer.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in
                 consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                    timeout=15)}
    consumer.close()
    assert sum(o for o in committed.values() if o > 0) >= 600

    # Kill the broker that coordinates the group (it leads the group's __consumer_offsets
    # partition); the partition fails over and its new leader coordinates the group.
    with kw.Conn(c.nodes[1].bootstrap) as conn:
        coordinator = kw.find_coordinator(conn, group)["node_id"]
    c.nodes[coordinator].kill()
    other = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group})
    deadline = time.monotonic() + 30
    while True:
        try:
            got = {tp.partition: tp.offset for tp in
                   other.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                   timeout=10)}
            break
        except Exception:
            assert time.monotonic() < deadline, "the group's offsets did not come back"
            time.sleep(0.2)
    other.close()
    assert got == committed
    with kw.Conn(c.bootstrap.split(",")[0]) as conn:
        assert kw.find_coordinator(conn, group)["node_id"] != coordinator


def commit_with_retries(producer: Producer, timeout: float = 60.0) -> None:
    """commit_transaction as Kafka documents it: a retriable error means "call it again"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            producer.commit_transaction(30)
            return
        except KafkaException as e:
            if not (e.args[0].retriable() and time.monotonic() < deadline):
                raise


# method=thread: a client call stuck in librdkafka does not return to Python, so the default
# signal method could not stop it; this way a hang fails the run instead of stalling it.
@pytest.mark.timeout(180, method="thread")
def test_transactions_span_brokers_and_survive_losing_their_coordinator(cluster):
    """A transactional producer writes to partitions led by every broker and commits a group's
    offsets in the same transactions; the coordinator marks the other brokers' partitions
    with WriteTxnMarkers. Then the broker that coordinates the transaction is killed while one
    is open, and the commit completes under the broker that takes its partition over."""
    c = cluster
    topic = unique_topic("txn")
    create_topic(c.bootstrap, topic, partitions=PARTITIONS)
    assert set(c.leaders(topic).values()) == {1, 2, 3}
    txn_id = unique_topic("tid")
    producer = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": txn_id,
                         "transaction.timeout.ms": 60_000, **FAST_RECONNECT})
    producer.init_transactions(30)
    with kw.Conn(c.nodes[1].bootstrap) as conn:
        coordinator = kw.find_coordinator(conn, txn_id, key_type=1)["node_id"]
        # A group coordinated elsewhere: librdkafka 2.16's send_offsets_to_transaction hangs
        # past its timeout when the group's coordinator is a broker that left the metadata
        # (confluentinc/librdkafka#5511); the group coordinator's own failover is tested above.
        group = next(g for g in (unique_topic(f"txn-group{i}") for i in range(30))
                     if kw.find_coordinator(conn, g)["node_id"] not in (coordinator, -1))
    member = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group})
    committed: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}

    def transaction(n: int, outcome: str, before_end=lambda: None) -> None:
        producer.begin_transaction()
        values = {p: f"txn{n}-p{p}".encode() for p in range(PARTITIONS)}
        for p, value in values.items():
            producer.produce(topic, value=value, partition=p)
        assert producer.flush(30) == 0
        producer.send_offsets_to_transaction(
            [TopicPartition(topic, p, n + 1) for p in range(PARTITIONS)],
            member.consumer_group_metadata(), 30)
        before_end()
        if outcome == "commit":
            commit_with_retries(producer)
            for p, value in values.items():
                committed[p].append(value)
        else:
            producer.abort_transaction(30)

    for n in range(4):
        transaction(n, "commit" if n % 2 == 0 else "abort")

    transaction(4, "commit", before_end=lambda: c.nodes[coordinator].kill())
    transaction(5, "commit")
    producer.flush(10)
    member.close()

    with kw.Conn(c.bootstrap.split(",")[0]) as conn:
        assert kw.find_coordinator(conn, txn_id, key_type=1)["node_id"] != coordinator
    # EndTxn answers once every marker is written: nothing is left open.
    ends = {p: hi for p, (_, hi) in watermarks(c.bootstrap, topic, range(PARTITIONS)).items()}
    read = read_topic(c.bootstrap, topic, range(PARTITIONS), "read_committed", ends)
    for p in range(PARTITIONS):
        assert values(read, p) == committed[p], f"partition {p}"
    assert group_offsets(c.bootstrap, group, topic, range(PARTITIONS)) == {
        p: 6 for p in range(PARTITIONS)}
