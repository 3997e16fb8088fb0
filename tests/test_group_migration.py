"""Online consumer-group protocol migration (KIP-848, Kafka 4.x
`group.consumer.migration.policy=bidirectional`) with real clients.

A classic group (JoinGroup/SyncGroup members) that a `group.protocol=consumer` member joins is
converted in place into a consumer group: the classic members stay in it (REBALANCE_IN_PROGRESS
on their heartbeat, rejoin, a server-computed assignment in SyncGroup) and the new member gets
partitions. When the last consumer-protocol member leaves, the group is converted back into a
classic group and the classic members rebalance among themselves.

Members are group_worker.py processes (so a SIGKILL is real) that commit synchronously after
processing each batch; their ownership is what their rebalance callbacks said. Checked:

* upgrade + downgrade (+ upgrade again), per classic client (confluent-kafka eager and
  cooperative-sticky, kafka-python, aiokafka): once stable every partition is owned by exactly
  one member (classic and consumer alike), balanced; the group type (ListGroups with and
  without a type filter, ConsumerGroupDescribe/DescribeGroups through describe_consumer_groups)
  is consumer while a consumer-protocol member is in the group and classic after the last one
  left; the described members and assignments are the clients'; records produced after each
  step are processed by the owner of their partition and by nobody else, and committed.
* rolling upgrade, then rolling downgrade, of a 3-member group on 12 partitions while records
  flow (acks=all).
* a mixed group (2 classic + 2 consumer members) losing a classic and a consumer member to
  SIGKILL: the survivors take over every partition after the session timeouts.

Everywhere: every acknowledged record processed at least once, with its value; committed
offsets never go back per partition (the members' acknowledged commits in time order, and an
AdminClient monitor polling OffsetFetch); every time a member gets a partition it resumes at
the partition's committed offset (exactly, when every earlier owner left gracefully; never
below it, when one was SIGKILLed), i.e. the conversions keep the committed offsets.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupType

from groups_util import (LoadProducer, OffsetMonitor, Worker, commit_regressions, coverage,
                         describe_group, end_offsets, seq_value, summarize,
                         topic_committed, wait_for)
from helpers import admin, create_topic, produce_all, unique_topic

T = 15  # seconds for admin futures

# Quick rebalances; KIP-848 members are dropped 6 s after their last heartbeat, like the
# classic members (group_worker.py sets session.timeout.ms=6000 for them). The migration
# policy is Kafka's default, spelled out.
GROUP_ARGS = ("--group-initial-rebalance-delay-ms", 300,
              "--group-consumer-session-timeout-ms", 6000,
              "--group-consumer-heartbeat-interval-ms", 1000,
              "--group-consumer-migration-policy", "bidirectional")

# Member kinds: (group_worker.py client, extra client config, group protocol).
KINDS = {
    "confluent-eager": ("confluent-classic", {}, "classic"),  # librdkafka's range,roundrobin
    "confluent-cooperative": ("confluent-classic",
                              {"partition.assignment.strategy": "cooperative-sticky"}, "classic"),
    "kafka-python": ("kafka-python", {}, "classic"),  # range, roundrobin
    "aiokafka": ("aiokafka", {}, "classic"),  # roundrobin
    "consumer": ("confluent-consumer", {}, "consumer"),  # KIP-848, server-side uniform assignor
}
CLASSIC_KINDS = ["confluent-eager", "confluent-cooperative", "kafka-python", "aiokafka"]


def group_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------
# members
# ---------------------------------------------------------------------------

class Members:
    """The worker processes of one group (all kinds), started by name."""

    def __init__(self, bootstrap: str, group: str, topic: str, out_dir: Path):
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.all: list[Worker] = []
        self.killed: dict[str, float] = {}  # name -> time of the SIGKILL

    def spawn(self, kind: str, name: str) -> Worker:
        client, conf, _ = KINDS[kind]
        w = Worker(client, self.bootstrap, self.group, self.topic, self.out_dir, name, conf)
        self.all.append(w)
        return w

    def live(self) -> list[Worker]:
        """Members that are meant to be in the group (not stopped, not killed)."""
        return [w for w in self.all if w.alive() and not w.terminated]

    def kill(self, w: Worker) -> None:
        self.killed[w.name] = time.time()
        w.kill()

    def check_running(self) -> None:
        """Every member that should be running is, and none hit a fatal client error (librdkafka
        reports e.g. a ConsumerGroupHeartbeat refusal as _FATAL and then just sits there)."""
        for w in self.all:
            if not w.terminated and w.name not in self.killed:
                assert w.alive(), f"member {w.name} died (exit {w.proc.returncode})\n{w.tail()}"
                fatal = [e for e in w.log(records=False).errors if "_FATAL" in e]
                assert not fatal, f"member {w.name} hit a fatal error: {fatal[0]}\n{self.text()}"

    def text(self) -> str:
        return summarize([w.log() for w in self.all]) + "\n" + "\n".join(w.tail(10) for w in self.all)

    def close(self) -> None:
        for w in self.all:
            w.close()


def current_assignment(w: Worker) -> frozenset[int]:
    """A member's assignment according to its callbacks (assign adds, revoke/lost remove:
    right for eager protocols, where assign carries the whole set, and incremental ones)."""
    log = w.log(records=False)
    events = sorted([(t, "A", ps) for t, ps in log.assigned] +
                    [(t, "V", ps) for t, ps in log.revoked] +
                    [(t, "L", ps) for t, ps in log.lost], key=lambda e: e[0])
    cur: set[int] = set()
    for _, kind, ps in events:
        if kind == "A":
            cur |= set(ps)
        else:
            cur -= set(ps)
    return frozenset(cur)


def wait_stable(ms: Members, members: list[Worker], partitions: int, hold: float = 1.5,
                timeout: float = 60.0) -> dict[str, frozenset[int]]:
    """Waits until every partition 0..partitions-1 is owned by exactly one of `members` (as
    their callbacks tell), every member owns at least one, and nothing changed for `hold`
    seconds. Transitional states (a partition owned twice or by nobody) are tolerated until
    the deadline. Returns {member name: partitions}."""
    want = list(range(partitions))
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    last = None
    cur: dict[str, frozenset[int]] = {}
    while time.monotonic() < deadline:
        ms.check_running()
        cur = {w.name: current_assignment(w) for w in members}
        allp = sorted(p for a in cur.values() for p in a)
        ok = allp == want and (len(members) > partitions or all(cur.values()))
        if ok and cur == last:
            if time.monotonic() - since >= hold:
                return cur
        else:
            since = time.monotonic()
        last = cur if ok else None
        time.sleep(0.1)
    others = {w.name: sorted(current_assignment(w)) for w in ms.all
              if w not in members and w.alive()}
    raise AssertionError(
        f"no stable assignment of {partitions} partitions, each owned by exactly one of "
        f"{[w.name for w in members]}, within {timeout}s; last seen: "
        f"{ {k: sorted(v) for k, v in cur.items()} }, other live processes: {others}\n{ms.text()}")


def assert_balanced(assign: dict[str, frozenset[int]]) -> None:
    sizes = sorted(len(v) for v in assign.values())
    assert sizes[-1] - sizes[0] <= 1, f"unbalanced assignment: { {k: sorted(v) for k, v in assign.items()} }"


# ---------------------------------------------------------------------------
# group type, state, members as the AdminClient shows them
# ---------------------------------------------------------------------------

def listed_groups(a, types=None) -> dict:
    kw = {"request_timeout": T}
    if types is not None:
        kw["types"] = types
    res = a.list_consumer_groups(**kw).result(T)
    assert not res.errors, f"list_consumer_groups errors: {res.errors}"
    return {g.group_id: g for g in res.valid}


def check_group(a, ms: Members, want: ConsumerGroupType, assign: dict[str, frozenset[int]],
                timeout: float = 20.0) -> dict[str, str]:
    """The group shows as type `want` in ListGroups (also under a type filter, and not under
    the other type's) and in describe_consumer_groups (ConsumerGroupDescribe, or DescribeGroups
    after librdkafka's fallback for classic groups), STABLE, with exactly the live members
    and the assignments their callbacks gave them. Polls until it holds (or fails with what it
    saw last). Returns {client id: member id}."""
    live = sorted(w.name for w in ms.live())
    assert live == sorted(assign), f"live members {live}, assignment of {sorted(assign)}"
    other = (ConsumerGroupType.CLASSIC if want == ConsumerGroupType.CONSUMER
             else ConsumerGroupType.CONSUMER)
    last: dict = {"problems": None, "ids": {}}

    def ok():
        problems = []
        groups = listed_groups(a)
        g = groups.get(ms.group)
        if g is None:
            problems.append(f"not listed (groups: {sorted(groups)})")
        else:
            if getattr(g, "type", None) != want:
                problems.append(f"listed with type {getattr(g, 'type', None)}")
            if g.state != ConsumerGroupState.STABLE:
                problems.append(f"listed in state {g.state}")
        if ms.group not in listed_groups(a, {want}):
            problems.append(f"missing from the list filtered on {want}")
        if ms.group in listed_groups(a, {other}):
            problems.append(f"in the list filtered on {other}")
        d = describe_group(ms.bootstrap, ms.group, a)
        if d.type != want:
            problems.append(f"described with type {d.type}")
        if d.state != ConsumerGroupState.STABLE:
            problems.append(f"described in state {d.state}")
        described = {m.client_id: frozenset(tp.partition for tp in
                                            ((m.assignment and m.assignment.topic_partitions) or [])
                                            if tp.topic == ms.topic)
                     for m in d.members}
        if len(d.members) != len(described) or described != assign:
            problems.append(f"described members {[(m.client_id, m.member_id) for m in d.members]} "
                            f"with assignments { {k: sorted(v) for k, v in described.items()} }, "
                            f"the clients have { {k: sorted(v) for k, v in assign.items()} }")
        last["problems"] = problems
        last["ids"] = {m.client_id: m.member_id for m in d.members}
        return not problems

    wait_for(ok, timeout, interval=0.3, msg=f"group {ms.group} to show as {want}, STABLE, with the "
             f"clients' members and assignments",
             on_timeout=lambda: f"problems: {last['problems']}\n{ms.text()}")
    return last["ids"]


def events_since(w: Worker, t: float) -> dict[str, list]:
    log = w.log(records=False)
    return {"revoked": [ps for t0, ps in log.revoked if t0 >= t],
            "lost": [ps for t0, ps in log.lost if t0 >= t]}


# ---------------------------------------------------------------------------
# records, offsets
# ---------------------------------------------------------------------------

class Producer(LoadProducer):
    """A paced acks=all producer that runs until finish() (or `total`)."""

    def finish(self, timeout: float = 120.0) -> list[tuple[int, int, int]]:
        self.total = min(self.total, self.sent)  # the loop ends after at most one more record
        self.join(timeout)
        assert not self.is_alive(), "producer did not finish"
        assert self.error is None, f"producer failed: {self.error!r}"
        assert self.unflushed == 0 and not self.failed, \
            f"undelivered records: {self.unflushed} unflushed, failed e.g. {self.failed[:3]}"
        assert len(self.acked) == self.sent, (len(self.acked), self.sent)
        return list(self.acked)


def produce_batch(bootstrap: str, topic: str, seqs, partitions: int) -> list[tuple[int, int, int]]:
    """acks=all, record `seq` to partition seq % partitions; -> [(partition, offset, seq)]."""
    seqs = list(seqs)
    reps = produce_all(bootstrap, topic, [{"key": f"k{s}".encode(), "value": seq_value(s),
                                           "partition": s % partitions} for s in seqs])
    bad = [r for r in reps if r.error is not None]
    assert not bad, f"produce failed: {bad[:3]}"
    return [(r.partition, r.offset, s) for r, s in zip(reps, seqs)]


def try_committed(bootstrap: str, group: str, topic: str):
    try:
        return topic_committed(bootstrap, group, topic)
    except Exception:  # noqa: BLE001 - coordinator busy, ...
        return None


def wait_committed_end(ms: Members, partitions: int, timeout: float = 60.0) -> dict[int, int]:
    """Waits until the group's committed offsets are the log end offsets of every partition."""
    end = end_offsets(ms.bootstrap, ms.topic, range(partitions))

    def caught_up():
        ms.check_running()
        c = try_committed(ms.bootstrap, ms.group, ms.topic)
        return c if c == end else None
    wait_for(caught_up, timeout, msg=f"the group to commit the log end {end}",
             on_timeout=lambda: f"committed {try_committed(ms.bootstrap, ms.group, ms.topic)}\n"
                                + ms.text())
    return end


def processed_by(ms: Members) -> dict[tuple[int, int], set[str]]:
    """(partition, offset) -> names of the members that processed it."""
    out: dict[tuple[int, int], set[str]] = defaultdict(set)
    for w in ms.all:
        for p, o, _ in w.log().records:
            out[(p, o)].add(w.name)
    return out


def check_processed_by_owner(ms: Members, batch, assign: dict[str, frozenset[int]]) -> None:
    """Every record of `batch` (produced while `assign` was stable) was processed by the
    owner of its partition, and by nobody else."""
    owner = {p: n for n, ps in assign.items() for p in ps}
    seen = processed_by(ms)
    bad = [(p, o, s, sorted(seen.get((p, o), ()))) for p, o, s in batch
           if seen.get((p, o), set()) != {owner[p]}]
    assert not bad, (f"{len(bad)} of {len(batch)} records produced while the assignment was "
                     f"{ {k: sorted(v) for k, v in assign.items()} } were not processed by exactly "
                     f"their partition's owner, e.g. (p, o, seq, processed by) {bad[:8]}\n{ms.text()}")
    now = {w.name: current_assignment(w) for w in ms.all if w.name in assign}
    assert now == assign, f"the assignment moved while idle: {assign} -> {now}"


def resume_points(path: Path) -> list[tuple[float, int, int]]:
    """From a member's log, in order: each time it was given a partition, (time of the assign
    callback, partition, offset of the first record it then processed from it)."""
    out = []
    awaiting: dict[int, float] = {}
    if not path.exists():
        return out
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the torn last line of a SIGKILLed member
            kind = line[0]
            if kind == "R":
                _, p, o, _ = line.split()
                p = int(p)
                if p in awaiting:
                    out.append((awaiting.pop(p), p, int(o)))
            elif kind in "AVL":
                parts = line.rstrip("\n").split(" ", 2)
                t = float(parts[1])
                ps = [int(x) for x in (parts[2] if len(parts) > 2 else "").split(",") if x]
                for p in ps:
                    if kind == "A":
                        awaiting[p] = t
                    else:
                        awaiting.pop(p, None)
    return out


def resume_mismatches(ms: Members, exact: bool) -> tuple[list[str], int]:
    """Every time a member got a partition, its first record from it must be the partition's
    committed offset at that time: the highest commit of it any member had acknowledged before
    the assign callback (0 if none, auto.offset.reset=earliest). With a graceful hand-over the
    previous owner's last acknowledged commit precedes its revoke callback, which precedes the
    reassignment, so it is exact; a SIGKILLed owner may die between a commit's acknowledgement
    and its log line, so then (exact=False) only "not below" is checked.
    -> (mismatches, number of hand-overs checked)."""
    commits: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for w in ms.all:
        for t, offs in w.log(records=False).commits:
            for p, o in offs.items():
                commits[p].append((t, o))
    bad = []
    checked = 0
    for w in ms.all:
        for t_a, p, first in resume_points(w.path):
            checked += 1
            want = max((o for t, o in commits[p] if t < t_a), default=0)
            if first < want or (exact and first != want):
                bad.append(f"{w.name} got partition {p} at {t_a:.3f} and started at offset {first}, "
                           f"committed was {want}")
    return bad, checked


def final_checks(ms: Members, acked, mon: OffsetMonitor, min_resumes: int,
                 exact_resume: bool = True) -> str:
    """At least once, commits never back, resumes at the committed offsets (at least
    `min_resumes` times a member got a partition and then read from it)."""
    logs = [w.log() for w in ms.all]
    info = summarize(logs)
    missing, wrong = coverage(acked, logs)
    assert not wrong, (f"{len(wrong)} processed records carry another value than the one "
                       f"acknowledged at their offset, e.g. (p, o, acked seq, seen seq) {wrong[:5]}")
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged records were never "
                         f"processed, e.g. (p, o, seq) {sorted(missing)[:10]}\n{info}")
    back = commit_regressions(logs)
    assert not back, f"members' acknowledged commits went back: {back[:10]}\n{info}"
    assert len(mon.observations) > 10, f"the offset monitor saw too little: {mon.failures[-5:]}"
    back = mon.regressions()
    assert not back, f"committed offsets (OffsetFetch monitor) went back: {back[:10]}"
    bad, checked = resume_mismatches(ms, exact_resume)
    assert not bad, (f"{len(bad)} of {checked} times a member did not resume a partition at its "
                     f"committed offset:\n" + "\n".join(bad[:10]) + f"\n{info}")
    assert checked >= min_resumes, f"only {checked} partition hand-overs seen\n{info}"
    died = [(log.name, e) for log in logs for e in log.errors if "worker died" in e]
    assert not died, f"members died: {died}"
    return f"{checked} partition hand-overs resumed at the committed offset\n{info}"


# ---------------------------------------------------------------------------
# 1 + 2: upgrade a classic group, downgrade it, upgrade it again
# ---------------------------------------------------------------------------

CLASSIC = ConsumerGroupType.CLASSIC
CONSUMER = ConsumerGroupType.CONSUMER


@pytest.mark.timeout(150)
@pytest.mark.parametrize("classic", CLASSIC_KINDS)
def test_upgrade_and_downgrade(strata_factory, classic):
    P = 6
    b = strata_factory(*GROUP_ARGS, name=f"migrate-{classic}")
    topic = unique_topic("mig")
    create_topic(b.bootstrap, topic, partitions=P)
    group = group_name(f"mig-{classic}")
    ms = Members(b.bootstrap, group, topic, b.workdir / "members")
    a = admin(b.bootstrap)
    mon = OffsetMonitor(b.bootstrap, group, topic)
    seq = itertools.count()
    acked: list[tuple[int, int, int]] = []

    def step(assign):
        """Records produced while `assign` is stable go to their owners only, and are committed."""
        batch = produce_batch(b.bootstrap, topic, itertools.islice(seq, 60 * P), P)
        acked.extend(batch)
        wait_committed_end(ms, P, timeout=30)
        check_processed_by_owner(ms, batch, assign)

    def same_classic_members(before: dict, after: dict, what: str) -> None:
        """The classic members kept their member ids (converted in place, not fenced and
        rejoined) and lost nothing (they revoked, as in a normal rebalance)."""
        for n in ("c1", "c2"):
            assert after.get(n) == before.get(n), \
                f"{what}: member id of {n} was {before.get(n)}, is {after.get(n)}\n{ms.text()}"

    try:
        mon.start()
        acked.extend(produce_batch(b.bootstrap, topic, itertools.islice(seq, 100 * P), P))

        # A stable classic group.
        c1, c2 = ms.spawn(classic, "c1"), ms.spawn(classic, "c2")
        s0 = wait_stable(ms, [c1, c2], P)
        assert_balanced(s0)
        wait_committed_end(ms, P, timeout=30)
        ids0 = check_group(a, ms, CLASSIC, s0)

        # Upgrade: a consumer-protocol member joins; the classic members stay in the converted
        # group and rebalance with it under the server's assignor.
        t_up = time.time()
        k1 = ms.spawn("consumer", "k1")
        s1 = wait_stable(ms, [c1, c2, k1], P)
        assert_balanced(s1)
        ids1 = check_group(a, ms, CONSUMER, s1)
        same_classic_members(ids0, ids1, "upgrade")
        ev = {w.name: events_since(w, t_up) for w in (c1, c2)}
        assert not any(e["lost"] for e in ev.values()), f"classic members lost partitions: {ev}"
        assert any(e["revoked"] for e in ev.values()), \
            f"no classic member revoked partitions for the new member ({s0} -> {s1}): {ev}"
        step(s1)

        # Downgrade: the only consumer-protocol member leaves; the classic members take over
        # every partition in a classic group again.
        t_down = time.time()
        k1.stop()
        s2 = wait_stable(ms, [c1, c2], P)
        assert_balanced(s2)
        ids2 = check_group(a, ms, CLASSIC, s2)
        same_classic_members(ids0, ids2, "downgrade")
        ev = {w.name: events_since(w, t_down) for w in (c1, c2)}
        assert not any(e["lost"] for e in ev.values()), f"classic members lost partitions: {ev}"
        step(s2)

        # And up again: the converted-back group is an ordinary classic group.
        k2 = ms.spawn("consumer", "k2")
        s3 = wait_stable(ms, [c1, c2, k2], P)
        assert_balanced(s3)
        ids3 = check_group(a, ms, CONSUMER, s3)
        same_classic_members(ids0, ids3, "second upgrade")
        step(s3)

        for w in (k2, c1, c2):
            w.terminate()
        for w in (k2, c1, c2):
            w.stop()
        mon.stop()
        b.assert_alive()
        print(final_checks(ms, acked, mon, min_resumes=P))
    finally:
        mon.stop_flag.set()
        ms.close()


# ---------------------------------------------------------------------------
# 3: rolling upgrade, then rolling downgrade, under load
# ---------------------------------------------------------------------------

ROLL_PARTITIONS = 12
ROLL_RATE = 2_000      # records/s offered while the members are replaced
ROLL_MAX = 100_000     # the producer stops after the rolling steps, or here


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rolling_upgrade_and_downgrade_under_load(strata_factory):
    P = ROLL_PARTITIONS
    b = strata_factory(*GROUP_ARGS, name="migrate-rolling")
    topic = unique_topic("migroll")
    create_topic(b.bootstrap, topic, partitions=P)
    group = group_name("migroll")
    ms = Members(b.bootstrap, group, topic, b.workdir / "members")
    a = admin(b.bootstrap)
    prod = Producer(b.bootstrap, topic, ROLL_MAX, ROLL_RATE)
    mon = OffsetMonitor(b.bootstrap, group, topic)

    def replace(old: Worker, kind: str, name: str, want: ConsumerGroupType) -> Worker:
        """Start a new member, let it get partitions, close the old one gracefully; then the
        group settles with the type `want`."""
        new = ms.spawn(kind, name)
        wait_for(lambda: ms.check_running() or current_assignment(new), 60,
                 msg=f"{name} to get partitions", on_timeout=ms.text)
        old.stop()
        s = wait_stable(ms, ms.live(), P)
        assert_balanced(s)
        check_group(a, ms, want, s)
        return new

    try:
        mon.start()
        olds = [ms.spawn("confluent-eager", f"c{i}") for i in (1, 2, 3)]
        prod.start()
        wait_for(lambda: ms.check_running() or all(w.processed_count() > 0 for w in olds), 60,
                 msg="the classic members to process records", on_timeout=ms.text)
        check_group(a, ms, CLASSIC, wait_stable(ms, olds, P))

        # c1..c3 -> k1..k3: consumer from the first replacement on.
        news = [replace(old, "consumer", f"k{i}", CONSUMER) for i, old in enumerate(olds, 1)]
        n_up = prod.acked_count()

        # k1..k3 -> d1..d3: consumer while a consumer-protocol member is left, then classic.
        backs = [replace(old, "confluent-eager", f"d{i}", CONSUMER if i < 3 else CLASSIC)
                 for i, old in enumerate(news, 1)]

        acked = prod.finish()
        assert 0 < n_up < len(acked), (n_up, len(acked))
        end = wait_committed_end(ms, P, timeout=90)
        assert sum(end.values()) == len(acked), (end, len(acked))
        for w in backs:
            w.terminate()
        for w in backs:
            w.stop()
        mon.stop()
        b.assert_alive()
        info = final_checks(ms, acked, mon, min_resumes=2 * P)
        for w in news:
            assert w.log().records, f"the consumer-protocol member {w.name} processed nothing\n{info}"
        print(f"{len(acked)} records ({n_up} by the end of the upgrade)\n{info}")
    finally:
        prod.stop()
        mon.stop_flag.set()
        ms.close()


# ---------------------------------------------------------------------------
# 4: a mixed group loses a classic and a consumer member to SIGKILL
# ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mixed_group_member_sigkill(strata_factory):
    P = 12
    b = strata_factory(*GROUP_ARGS, name="migrate-kill")
    topic = unique_topic("migkill")
    create_topic(b.bootstrap, topic, partitions=P)
    group = group_name("migkill")
    ms = Members(b.bootstrap, group, topic, b.workdir / "members")
    a = admin(b.bootstrap)
    prod = Producer(b.bootstrap, topic, 100_000, 1_500)
    mon = OffsetMonitor(b.bootstrap, group, topic)
    try:
        mon.start()
        # Two classic members of different clients (their common assignor is roundrobin) ...
        c1, c2 = ms.spawn("confluent-eager", "c1"), ms.spawn("aiokafka", "c2")
        prod.start()
        check_group(a, ms, CLASSIC, wait_stable(ms, [c1, c2], P))
        # ... and two consumer-protocol members.
        k1, k2 = ms.spawn("consumer", "k1"), ms.spawn("consumer", "k2")
        check_group(a, ms, CONSUMER, wait_stable(ms, [c1, c2, k1, k2], P))
        wait_for(lambda: ms.check_running() or all(w.processed_count() > 0 for w in (c1, c2, k1, k2)),
                 30, msg="every member to process records", on_timeout=ms.text)

        # A classic member dies; its partitions move once its session (6 s) has expired.
        t_kill = time.time()
        ms.kill(c1)
        check_group(a, ms, CONSUMER, wait_stable(ms, [c2, k1, k2], P, timeout=45))
        took = time.time() - t_kill

        # A consumer-protocol member dies too.
        ms.kill(k1)
        s = wait_stable(ms, [c2, k2], P, timeout=45)
        assert_balanced(s)
        check_group(a, ms, CONSUMER, s)

        acked = prod.finish()
        wait_committed_end(ms, P, timeout=90)
        for w in (c2, k2):
            w.terminate()
        for w in (c2, k2):
            w.stop()
        mon.stop()
        b.assert_alive()
        info = final_checks(ms, acked, mon, min_resumes=P, exact_resume=False)
        assert c1.log().records and k1.log().records, f"a SIGKILLed member processed nothing\n{info}"
        print(f"{len(acked)} records, the classic member's partitions moved {took:.1f}s after "
              f"its SIGKILL\n{info}")
    finally:
        prod.stop()
        mon.stop_flag.set()
        ms.close()
