"""Consumer groups end to end: FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
OffsetCommit/OffsetFetch/OffsetDelete, DescribeGroups/ListGroups/DeleteGroups and KIP-848
ConsumerGroupHeartbeat/ConsumerGroupDescribe, with real clients.

* churn: 3 members over 12 partitions while 200k keyed records flow (acks=all); one member
  closes, one member *process* is SIGKILLed, two join; then the whole group stops cleanly and
  a new group generation resumes. Per client: confluent-kafka classic, confluent-kafka with
  group.protocol=consumer (KIP-848), kafka-python, aiokafka. Members are OS processes
  (group_worker.py) that commit synchronously after processing each batch. Checked: every
  acknowledged record processed at least once (and with its value); committed offsets never
  go back per partition (members' acknowledged commits in time order, and an AdminClient
  monitor polling OffsetFetch); after the clean stop each partition resumes exactly at its
  committed offset, nothing below it unprocessed; the group ends committed at the log end.
* the same with the broker SIGKILLed and restarted in the middle (confluent-kafka classic):
  commits acknowledged before the kill are still there after the restart (read while the
  members are SIGSTOPped, so they cannot commit them again), and the group then finishes.
* AdminClient: list (state filter) / describe / list offsets / alter offsets / delete groups,
  OffsetDelete by hand (the Python clients do not expose it); offsets survive restarts.
* static membership (group.instance.id): a member back within the session timeout gets its
  partitions back with no rebalance of the others.
* assignors: client-side range (eager) and cooperative-sticky, server-side (KIP-848) uniform
  and range: every partition assigned exactly once when stable, through joins and leaves.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType,
                             KafkaException, TopicPartition)

from groups_util import (Member, OffsetMonitor, LoadProducer, Worker, commit_regressions,
                         coverage, describe_group, end_offsets, last_commits_before,
                         offset_delete, stable_assignment, summarize, topic_committed, wait_for)
from helpers import admin, consumer, create_topic, kafka_error_code, produce_all, unique_topic

T = 15  # seconds for admin futures

# Kafka error codes
UNKNOWN_MEMBER_ID = 25
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
GROUP_SUBSCRIBED_TO_TOPIC = 86

# Quick rebalances; KIP-848 members are dropped 6 s after their last heartbeat (like the
# classic clients' session.timeout.ms=6000 set by group_worker.py).
GROUP_ARGS = ("--group-initial-rebalance-delay-ms", 300,
              "--group-consumer-session-timeout-ms", 6000,
              "--group-consumer-heartbeat-interval-ms", 1000)

CLIENTS = ["confluent-classic", "confluent-consumer", "kafka-python", "aiokafka"]

CHURN_PARTITIONS = 12
CHURN_TOTAL = 200_000
CHURN_GATE = 150_000  # produced while the first generation of the group churns; the rest after
CHURN_RATE = 6_000    # records/s offered by the producer


def group_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def current_assignment(w: Worker) -> set[int]:
    """A member's assignment from its callbacks (assign adds, revoke/lost remove: right for
    eager protocols, where assign carries the full set, and incremental ones)."""
    events = []
    log = w.log(records=False)
    events += [(t, "A", ps) for t, ps in log.assigned]
    events += [(t, "V", ps) for t, ps in log.revoked]
    events += [(t, "L", ps) for t, ps in log.lost]
    cur: set[int] = set()
    for _, kind, ps in sorted(events, key=lambda e: e[0]):
        if kind == "A":
            cur |= set(ps)
        else:
            cur -= set(ps)
    return cur


def all_logs_text(workers) -> str:
    return summarize([w.log() for w in workers]) + "\n" + "\n".join(
        w.tail(8) for w in workers)


def assert_members_running(workers, expected_dead=()) -> None:
    for w in workers:
        if w in expected_dead:
            continue
        assert w.alive(), f"member {w.name} died (exit {w.proc.returncode})\n{w.tail()}"


def try_committed(bootstrap, group, topic):
    try:
        return topic_committed(bootstrap, group, topic)
    except Exception:  # noqa: BLE001 - broker restarting, coordinator loading, ...
        return None


# ---------------------------------------------------------------------------
# 1 + 2: churn (and a broker SIGKILL in the middle)
# ---------------------------------------------------------------------------

def run_churn(strata_factory, client: str, broker_kill: bool = False) -> None:
    name = f"churn-{client}{'-bkill' if broker_kill else ''}"
    b = strata_factory(*GROUP_ARGS, name=name)
    topic = unique_topic(name)
    create_topic(b.bootstrap, topic, partitions=CHURN_PARTITIONS)
    group = group_name(name)
    out_dir = b.workdir / "members"
    out_dir.mkdir(parents=True, exist_ok=True)
    workers: list[Worker] = []

    def spawn(n: str) -> Worker:
        w = Worker(client, b.bootstrap, group, topic, out_dir, n)
        workers.append(w)
        return w

    prod = LoadProducer(b.bootstrap, topic, CHURN_TOTAL, CHURN_RATE, gate_at=CHURN_GATE)
    mon = OffsetMonitor(b.bootstrap, group, topic)
    kill_report = None
    try:
        mon.start()
        w1, w2, w3 = spawn("w1"), spawn("w2"), spawn("w3")
        prod.start()
        wait_for(lambda: assert_members_running(workers) or
                 all(w.processed_count() > 0 for w in (w1, w2, w3)), 60,
                 msg="all three first members to process records",
                 on_timeout=lambda: all_logs_text(workers))
        time.sleep(1.0)

        # A member closes gracefully (LeaveGroup / leave heartbeat).
        w1.stop()
        time.sleep(2.0)
        assert_members_running(workers, expected_dead=(w1,))

        if broker_kill:
            # Commits for every partition, some after the rebalance, so there is something to lose.
            wait_for(lambda: sum(len(w.log(records=False).commits) for w in (w2, w3)) > 20 and
                     len(last_commits_before([w.log(records=False) for w in workers], 1e12))
                     == CHURN_PARTITIONS, 30,
                     msg="commits after the first rebalance", on_timeout=lambda: all_logs_text(workers))
            # The members are frozen around the kill so that what the restarted broker
            # returns is what it kept, not what they commit again right after the restart.
            live = [w for w in workers if w.alive()]
            for w in live:
                w.freeze()
            try:
                time.sleep(0.5)
                t_kill = time.time()
                b.kill()
                acked_before = last_commits_before([w.log() for w in workers], t_kill)
                b.start()
                after = wait_for(lambda: try_committed(b.bootstrap, group, topic), 30,
                                 msg="committed offsets readable after the broker restart")
            finally:
                for w in live:
                    w.thaw()
            lost = {p: (o, after.get(p)) for p, o in acked_before.items() if after.get(p, -1) < o}
            assert not lost, (f"committed offsets went back over a broker SIGKILL+restart, "
                              f"partition: (last acknowledged before the kill, after restart): {lost}")
            assert len(acked_before) == CHURN_PARTITIONS, f"commits before the kill: {acked_before}"
            kill_report = (acked_before, after)
            time.sleep(2.0)

        # A member process is SIGKILLed while it owns partitions.
        wait_for(lambda: current_assignment(w2), 60, msg="w2 to own partitions",
                 on_timeout=lambda: all_logs_text(workers))
        w2.kill()
        time.sleep(2.0)

        # New members join.
        w4, w5 = spawn("w4"), spawn("w5")
        wait_for(lambda: assert_members_running(workers, expected_dead=(w1, w2)) or
                 (current_assignment(w4) and current_assignment(w5)), 60,
                 msg="the new members w4, w5 to get partitions",
                 on_timeout=lambda: all_logs_text(workers))
        assert_members_running(workers, expected_dead=(w1, w2))
        wait_for(prod.at_gate.is_set, 120, msg=f"producer to reach record {CHURN_GATE}")
        assert prod.error is None, f"producer failed: {prod.error!r}"

        # The whole group stops cleanly ...
        phase1 = [w1, w2, w3, w4, w5]
        for w in (w3, w4, w5):
            w.terminate()
        for w in (w3, w4, w5):
            w.stop()
        stopped = wait_for(lambda: try_committed(b.bootstrap, group, topic), 30,
                           msg="committed offsets at the clean stop")
        desc = wait_for(lambda: (lambda d: d if d.state == ConsumerGroupState.EMPTY else None)(
            describe_group(b.bootstrap, group)), 20, msg="the stopped group to be EMPTY")
        assert not desc.members, f"members left in a stopped group: {desc.members}"

        # ... and restarts while the rest of the records flow.
        prod.gate.set()
        phase2 = [spawn("w6"), spawn("w7"), spawn("w8")]
        prod.join(180)
        assert not prod.is_alive(), "producer did not finish"
        assert prod.error is None, f"producer failed: {prod.error!r}"
        assert prod.unflushed == 0 and not prod.failed, \
            f"undelivered records: {prod.unflushed} unflushed, failed e.g. {prod.failed[:3]}"
        assert len(prod.acked) == CHURN_TOTAL
        end = end_offsets(b.bootstrap, topic, range(CHURN_PARTITIONS))
        assert sum(end.values()) >= CHURN_TOTAL

        def caught_up():
            assert_members_running(phase2)
            c = try_committed(b.bootstrap, group, topic)
            return c if c == end else None
        wait_for(caught_up, 120, msg=f"the group to commit the log end {end}",
                 on_timeout=lambda: f"committed {try_committed(b.bootstrap, group, topic)}\n"
                                    + all_logs_text(workers))
        for w in phase2:
            w.terminate()
        for w in phase2:
            w.stop()
        mon.stop()
        b.assert_alive()

        # ---- checks ----
        logs1 = [w.log() for w in phase1]
        logs2 = [w.log() for w in phase2]
        logs = logs1 + logs2
        info = summarize(logs)
        assert logs1[1].records, "the SIGKILLed member never processed anything"

        missing, wrong = coverage(prod.acked, logs)
        assert not wrong, (f"{len(wrong)} processed records carry another value than the one "
                           f"acknowledged at their offset, e.g. (p, o, acked seq, seen seq) {wrong[:5]}")
        assert not missing, (f"{len(missing)} of {len(prod.acked)} acknowledged records were never "
                             f"processed, e.g. (p, o, seq) {sorted(missing)[:10]}\n{info}")

        back = commit_regressions(logs)
        assert not back, f"members' acknowledged commits went back: {back[:10]}\n{info}"
        assert len(mon.observations) > 20, f"monitor saw too little: {mon.failures[-5:]}"
        back = mon.regressions()
        assert not back, f"committed offsets (OffsetFetch monitor) went back: {back[:10]}"

        # Nothing below the offsets committed at the stop was left unprocessed before it.
        done1 = {(p, o) for log in logs1 for p, o, _ in log.records}
        skipped = sorted((p, o, s) for p, o, s in prod.acked
                         if o < stopped.get(p, 0) and (p, o) not in done1)
        assert not skipped, (f"{len(skipped)} records below the committed offsets at the stop "
                             f"{stopped} were never processed before it, e.g. {skipped[:10]}")

        # After the restart each partition starts exactly at its committed offset.
        first: dict[int, int] = {}
        n2 = 0
        for log in logs2:
            for p, o, _ in log.records:
                n2 += 1
                first[p] = min(first.get(p, o), o)
        assert n2 >= CHURN_TOTAL - CHURN_GATE, f"only {n2} records processed after the restart"
        wrong_start = {}
        for p in range(CHURN_PARTITIONS):
            want = stopped.get(p, 0)
            if p in first:
                if first[p] != want:
                    wrong_start[p] = f"resumed at {first[p]}, committed {want}"
            elif want != end[p]:
                wrong_start[p] = f"nothing read after the restart, committed {want}, end {end[p]}"
        assert not wrong_start, f"the restarted group did not resume at the committed offsets: {wrong_start}"
        if kill_report is not None:
            print(f"broker kill: acked before {kill_report[0]}, after restart {kill_report[1]}")
        print(info)
    finally:
        prod.stop()
        mon.stop_flag.set()
        for w in workers:
            w.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", CLIENTS)
def test_churn(strata_factory, client):
    run_churn(strata_factory, client)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_churn_with_broker_sigkill(strata_factory):
    run_churn(strata_factory, "confluent-classic", broker_kill=True)


# ---------------------------------------------------------------------------
# 3: AdminClient
# ---------------------------------------------------------------------------

def group_ids(a, states=None) -> dict:
    kw = {"request_timeout": T}
    if states is not None:
        kw["states"] = states
    res = a.list_consumer_groups(**kw).result(T)
    assert not res.errors, f"list_consumer_groups errors: {res.errors}"
    return {g.group_id: g for g in res.valid}


def offsets_of(a, group, partitions=None) -> dict[tuple[str, int], int]:
    req = ConsumerGroupTopicPartitions(group, partitions)
    res = a.list_consumer_group_offsets([req], request_timeout=T)[group].result(T)
    out = {}
    for tp in res.topic_partitions or []:
        assert tp.error is None, f"{group} {tp}: {tp.error}"
        if tp.offset >= 0:
            out[(tp.topic, tp.partition)] = tp.offset
    return out


def future_error(fut) -> int | None:
    try:
        r = fut.result(T)
    except KafkaException as e:
        return kafka_error_code(e)
    for tp in getattr(r, "topic_partitions", None) or []:
        if tp.error is not None:
            return tp.error.code()
    return None


def members_by_client(desc) -> dict[str, frozenset[int]]:
    return {m.client_id: frozenset(tp.partition for tp in (m.assignment.topic_partitions or []))
            for m in desc.members}


@pytest.mark.timeout(180)
def test_admin_groups_and_offsets(strata_factory):
    b = strata_factory("--group-initial-rebalance-delay-ms", 0, name="groups-admin")
    topic = unique_topic("gadm")
    create_topic(b.bootstrap, topic, partitions=6)
    produce_all(b.bootstrap, topic, [{"key": f"k{i}".encode(), "value": f"{i}:x".encode(),
                                      "partition": i % 6} for i in range(600)])
    end = end_offsets(b.bootstrap, topic, range(6))
    assert end == {p: 100 for p in range(6)}
    a = admin(b.bootstrap)
    active, empty, fresh = group_name("active"), group_name("empty"), group_name("fresh")
    members: list[Member] = []
    try:
        # A group with committed offsets and no members left.
        e1 = Member(b.bootstrap, empty, topic, "e1")
        members.append(e1)
        e1.start()
        stable_assignment([e1], 6)
        committed = {p: 5 + p for p in range(6)}
        e1.commit(committed)
        e1.close()

        # A stable group with two members, one commit.
        a1 = Member(b.bootstrap, active, topic, "a1")
        a2 = Member(b.bootstrap, active, topic, "a2")
        members += [a1, a2]
        a1.start()
        a2.start()
        stable = stable_assignment([a1, a2], 6)
        a1.commit({p: 1 for p in stable["a1"]})

        # ListGroups, with and without a state filter.
        groups = group_ids(a)
        assert active in groups and empty in groups, f"groups listed: {sorted(groups)}"
        assert groups[active].state == ConsumerGroupState.STABLE, groups[active]
        assert groups[empty].state == ConsumerGroupState.EMPTY, groups[empty]
        assert not groups[active].is_simple_consumer_group
        only_stable = group_ids(a, {ConsumerGroupState.STABLE})
        assert active in only_stable and empty not in only_stable, sorted(only_stable)
        only_empty = group_ids(a, {ConsumerGroupState.EMPTY})
        assert empty in only_empty and active not in only_empty, sorted(only_empty)

        # DescribeGroups: members and their assignments.
        d = describe_group(b.bootstrap, active, a)
        assert d.state == ConsumerGroupState.STABLE, d
        assert not d.is_simple_consumer_group
        assert d.partition_assignor == "range", d.partition_assignor  # librdkafka's default first
        assert d.coordinator is not None and d.coordinator.port == b.port, d.coordinator
        assert members_by_client(d) == stable, f"described {members_by_client(d)}, clients have {stable}"
        assert all(m.member_id for m in d.members) and len({m.member_id for m in d.members}) == 2
        d = describe_group(b.bootstrap, empty, a)
        assert d.state == ConsumerGroupState.EMPTY and not d.members, d

        # OffsetFetch, all partitions and some.
        assert offsets_of(a, empty) == {(topic, p): o for p, o in committed.items()}
        assert offsets_of(a, empty, [TopicPartition(topic, 1), TopicPartition(topic, 4)]) == \
            {(topic, 1): 6, (topic, 4): 9}
        assert offsets_of(a, active) == {(topic, p): 1 for p in stable["a1"]}

        # Altering offsets: fine on an empty group (and on a new one), refused on an active one.
        new = {p: 50 + p for p in range(6)}
        req = ConsumerGroupTopicPartitions(empty, [TopicPartition(topic, p, o) for p, o in new.items()])
        assert future_error(a.alter_consumer_group_offsets([req], request_timeout=T)[empty]) is None
        assert offsets_of(a, empty) == {(topic, p): o for p, o in new.items()}
        req = ConsumerGroupTopicPartitions(fresh, [TopicPartition(topic, 0, 42)])
        assert future_error(a.alter_consumer_group_offsets([req], request_timeout=T)[fresh]) is None
        assert offsets_of(a, fresh) == {(topic, 0): 42}
        req = ConsumerGroupTopicPartitions(active, [TopicPartition(topic, p, 99) for p in range(6)])
        err = future_error(a.alter_consumer_group_offsets([req], request_timeout=T)[active])
        assert err == UNKNOWN_MEMBER_ID, f"altering a stable group's offsets: error {err}"
        assert offsets_of(a, active) == {(topic, p): 1 for p in stable["a1"]}

        # OffsetDelete.
        top, per = offset_delete(b.bootstrap, empty, topic, [0, 1])
        assert (top, per) == (0, {0: 0, 1: 0}), (top, per)
        assert offsets_of(a, empty) == {(topic, p): o for p, o in new.items() if p >= 2}
        top, per = offset_delete(b.bootstrap, active, topic, sorted(stable["a1"]))
        assert top == 0 and per == {p: GROUP_SUBSCRIBED_TO_TOPIC for p in stable["a1"]}, (top, per)
        assert offsets_of(a, active) == {(topic, p): 1 for p in stable["a1"]}
        top, per = offset_delete(b.bootstrap, group_name("nosuch"), topic, [0])
        assert top == GROUP_ID_NOT_FOUND, (top, per)

        # DeleteGroups.
        fs = a.delete_consumer_groups([active, empty, group_name("nosuch")], request_timeout=T)
        errs = {g: future_error(f) for g, f in fs.items()}
        assert errs[active] == NON_EMPTY_GROUP, errs
        assert errs[empty] is None, errs
        nosuch = [g for g in errs if g not in (active, empty)][0]
        assert errs[nosuch] == GROUP_ID_NOT_FOUND, errs
        groups = group_ids(a)
        assert empty not in groups and active in groups, sorted(groups)
        assert offsets_of(a, empty) == {}

        # Once its members are gone the other group can go too.
        a1.close()
        a2.close()
        d = wait_for(lambda: (lambda d: d if d.state == ConsumerGroupState.EMPTY else None)(
            describe_group(b.bootstrap, active, a)), 15, msg="the active group to become EMPTY")
        assert not d.members
        assert future_error(a.delete_consumer_groups([active], request_timeout=T)[active]) is None
        assert active not in group_ids(a)
        b.assert_alive()
    finally:
        for m in members:
            m.stop_flag.set()


@pytest.mark.timeout(180)
def test_offsets_survive_restarts(strata_factory):
    b = strata_factory("--group-initial-rebalance-delay-ms", 0, name="groups-restart")
    topic = unique_topic("grst")
    create_topic(b.bootstrap, topic, partitions=4)
    produce_all(b.bootstrap, topic, [{"value": f"{i}:x".encode(), "partition": i % 4}
                                     for i in range(400)])
    group, admin_only = group_name("rst"), group_name("rst-admin")
    m = Member(b.bootstrap, group, topic, "r1")
    m.start()
    try:
        stable_assignment([m], 4)
        committed = {p: 10 * p + 3 for p in range(4)}
        m.commit(committed)
    finally:
        m.close()
    a = admin(b.bootstrap)
    req = ConsumerGroupTopicPartitions(admin_only, [TopicPartition(topic, p, 7) for p in range(4)])
    assert future_error(a.alter_consumer_group_offsets([req], request_timeout=T)[admin_only]) is None

    def check(what):
        a = admin(b.bootstrap)
        got = wait_for(lambda: try_committed(b.bootstrap, group, topic), 30, msg=f"offsets {what}")
        assert got == committed, f"{what}: committed {got}, expected {committed}"
        got = wait_for(lambda: try_committed(b.bootstrap, admin_only, topic), 30, msg=f"offsets {what}")
        assert got == {p: 7 for p in range(4)}, f"{what}: admin-committed {got}"
        groups = group_ids(a)
        assert group in groups and groups[group].state == ConsumerGroupState.EMPTY, \
            f"{what}: {groups.get(group)}"

    b.restart()  # SIGTERM
    check("after a graceful restart")

    # A member of the group resumes exactly at the committed offsets.
    c = consumer(b.bootstrap, **{"group.id": group, "enable.partition.eof": False})
    first: dict[int, int] = {}
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(first) < 4 and time.monotonic() < deadline:
            for msg in c.consume(100, 0.5):
                if msg.error() is None:
                    first.setdefault(msg.partition(), msg.offset())
        assert first == committed, f"resumed at {first}, committed {committed}"
        c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in committed.items()],
                 asynchronous=False)
        committed = {p: o + 1 for p, o in committed.items()}
    finally:
        c.close()

    b.restart(kill=True)  # SIGKILL: acknowledged commits are durable
    check("after a SIGKILL restart")


# ---------------------------------------------------------------------------
# 4: static membership
# ---------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_static_membership_rejoin_keeps_assignment(strata_factory):
    b = strata_factory("--group-initial-rebalance-delay-ms", 0, name="groups-static")
    topic = unique_topic("gstatic")
    create_topic(b.bootstrap, topic, partitions=6)
    group = group_name("static")
    session_ms = 6000
    conf = {"session.timeout.ms": session_ms, "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "range"}  # eager: a rebalance revokes everything

    def member(n):
        return Member(b.bootstrap, group, topic, n, {**conf, "group.instance.id": f"static-{n}"})

    ms = [member("a"), member("b"), member("c")]
    for m in ms:
        m.start()
    try:
        stable = stable_assignment(ms, 6)
        t0 = time.time()
        ms[2].close()  # a static member closes without LeaveGroup
        time.sleep(1.0)
        c2 = member("c")
        ms.append(c2)
        c2.start()
        wait_for(lambda: c2.assignment, 15, msg="the restarted static member's assignment")
        t_back = time.time() - t0
        assert t_back < session_ms / 1000, f"the static member got partitions only after {t_back:.1f}s"
        assert c2.assignment == stable["c"], f"restarted static member got {sorted(c2.assignment)}, " \
                                             f"had {sorted(stable['c'])}"
        # Past the old session timeout: still nobody else rebalanced.
        time.sleep(max(0.0, t0 + session_ms / 1000 + 3.0 - time.time()))
        for m in ms[:2]:
            ev = m.events_since(t0)
            assert not ev, f"member {m.member_name} saw {ev} while a static member restarted"
            assert m.assignment == stable[m.member_name]
        assert [(k, set(p)) for _, k, p in c2.events_since(t0)] == [("assign", set(stable["c"]))]
        d = describe_group(b.bootstrap, group)
        assert d.state == ConsumerGroupState.STABLE, d
        by_instance = {m.group_instance_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
                       for m in d.members}
        assert by_instance == {f"static-{k}": v for k, v in stable.items()}, by_instance
    finally:
        for m in ms:
            m.stop_flag.set()
        for m in ms:
            m.closed.wait(30)


# ---------------------------------------------------------------------------
# 5: assignors
# ---------------------------------------------------------------------------

ASSIGNORS = {
    # id: (client config, assignor name described, sticky (incremental), co-partitioning range)
    "classic-range": ({"partition.assignment.strategy": "range", "session.timeout.ms": 6000,
                       "heartbeat.interval.ms": 1000}, "range", False, True),
    "classic-cooperative-sticky": ({"partition.assignment.strategy": "cooperative-sticky",
                                    "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
                                   "cooperative-sticky", True, False),
    "consumer-uniform": ({"group.protocol": "consumer", "group.remote.assignor": "uniform"},
                         "uniform", True, False),
    "consumer-range": ({"group.protocol": "consumer", "group.remote.assignor": "range"},
                       "range", False, True),
}


def check_shape(assign: dict[str, frozenset], topics: list[str], ranged: bool) -> None:
    """Balanced overall (uniform, sticky), or (range) balanced per topic with every member
    getting the same partition numbers of both topics (co-partitioning)."""
    shown = {k: sorted(v) for k, v in assign.items()}
    if ranged:
        for t in topics:
            sizes = sorted(sum(1 for tt, _ in v if tt == t) for v in assign.values())
            assert sizes[-1] - sizes[0] <= 1, f"unbalanced in {t}: {shown}"
        for k, v in assign.items():
            per_topic = [sorted(p for tt, p in v if tt == t) for t in topics]
            assert all(x == per_topic[0] for x in per_topic), f"{k} not co-partitioned: {shown}"
    else:
        sizes = sorted(len(v) for v in assign.values())
        assert sizes[-1] - sizes[0] <= 1, f"unbalanced: {shown}"


def described_tps(desc, target: bool = False) -> dict[str, frozenset[tuple[str, int]]]:
    out = {}
    for m in desc.members:
        a = m.target_assignment if target else m.assignment
        out[m.client_id] = frozenset((tp.topic, tp.partition) for tp in ((a and a.topic_partitions) or []))
    return out


@pytest.mark.timeout(150)
@pytest.mark.parametrize("kind", list(ASSIGNORS))
def test_assignors_assign_each_partition_once(strata_factory, kind):
    """Two topics of 6 partitions, 3 members, then a 4th joins, then one leaves."""
    conf, assignor, sticky, ranged = ASSIGNORS[kind]
    b = strata_factory(*GROUP_ARGS, name=f"groups-{kind}")
    topics = [unique_topic("gasg-a"), unique_topic("gasg-b")]
    for t in topics:
        create_topic(b.bootstrap, t, partitions=6)
    every = {(t, p) for t in topics for p in range(6)}
    group = group_name(kind)
    ms = [Member(b.bootstrap, group, topics, f"m{i}", conf) for i in range(1, 4)]
    for m in ms:
        m.start()
    try:
        s1 = stable_assignment(ms, tps=every)
        check_shape(s1, topics, ranged)
        d = describe_group(b.bootstrap, group)
        assert d.state == ConsumerGroupState.STABLE, d
        assert d.partition_assignor == assignor, d.partition_assignor
        kip848 = conf.get("group.protocol") == "consumer"
        # ConsumerGroupDescribe for KIP-848 groups (with target assignments), DescribeGroups else.
        assert d.type == (ConsumerGroupType.CONSUMER if kip848 else ConsumerGroupType.CLASSIC), d.type
        assert described_tps(d) == s1, f"described {described_tps(d)}, clients have {s1}"
        if kip848:
            assert described_tps(d, target=True) == s1, f"target assignments {described_tps(d, True)}"

        # A fourth member joins.
        t = time.time()
        m4 = Member(b.bootstrap, group, topics, "m4", conf)
        ms.append(m4)
        m4.start()
        s2 = stable_assignment(ms, tps=every)
        check_shape(s2, topics, ranged)
        if sticky:
            for m in ms[:3]:
                k = m.member_name
                assert s2[k] <= s1[k], f"{kind}: {k} had {sorted(s1[k])}, then {sorted(s2[k])}"
                revoked = set().union(*[p for _, ev, p in m.events_since(t, all_topics=True)
                                        if ev in ("revoke", "lost")])
                assert revoked == set(s1[k] - s2[k]), \
                    f"{kind}: {k} had {sorted(revoked)} revoked, moved away were {sorted(s1[k] - s2[k])}"

        # One leaves.
        ms[1].close()
        rest = [m for m in ms if m is not ms[1]]
        s3 = stable_assignment(rest, tps=every)
        check_shape(s3, topics, ranged)
        if sticky:
            for m in rest:
                k = m.member_name
                assert s3[k] >= s2[k], f"{kind}: {k} had {sorted(s2[k])}, then {sorted(s3[k])}"
        d = wait_for(lambda: (lambda d: d if len(d.members) == 3 else None)(
            describe_group(b.bootstrap, group)), 15, msg="3 members described")
        assert described_tps(d) == s3, f"described {described_tps(d)}, clients have {s3}"
    finally:
        for m in ms:
            m.stop_flag.set()
        for m in ms:
            m.closed.wait(30)
