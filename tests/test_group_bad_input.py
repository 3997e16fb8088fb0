"""Bad input to the classic consumer-group APIs, on the raw wire (kafka_wire.py): unknown
members, stale generations, inconsistent protocols, out-of-range session timeouts, invalid
group ids, commits to unknown topics, oversize metadata, truncated bodies. Each gets Apache
Kafka's error code (or, for unparsable requests, a closed connection), never a dead or stuck
broker, and afterwards other clients - a group member that was already there, a new group,
a producer and a consumer - are still served.

Versions: FindCoordinator v2, JoinGroup v5, SyncGroup v3, Heartbeat v3, LeaveGroup v3,
OffsetCommit v7, OffsetFetch v5 (the last non-flexible version of each). Expected codes follow
Kafka's group coordinator (GroupCoordinatorService / GroupMetadataManager / ClassicGroup,
KafkaApis.handleOffsetCommitRequest).
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest

import kafka_wire as w
from helpers import admin, create_topic, roundtrip_ok, topic_exists, unique_topic

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79

MIN_SESSION_MS = 6000  # group.min.session.timeout.ms (Kafka's default), passed explicitly
SESSION_MS = 10000
METADATA_MAX = 4096  # offset.metadata.max.bytes (Kafka's default)
TOPIC_PARTITIONS = 4

FC, JOIN, SYNC, HB, LEAVE, COMMIT, FETCH = (w.API_FIND_COORDINATOR, w.API_JOIN_GROUP, w.API_SYNC_GROUP,
                                            w.API_HEARTBEAT, w.API_LEAVE_GROUP, w.API_OFFSET_COMMIT,
                                            w.API_OFFSET_FETCH)


@pytest.fixture(scope="module")
def b(module_strata_factory):
    return module_strata_factory("--group-initial-rebalance-delay-ms", 0,
                                 "--group-min-session-timeout-ms", MIN_SESSION_MS, name="groupbad")


@pytest.fixture(autouse=True)
def _revive(b):
    """A test that crashed the shared broker fails on its own; the next one gets it back
    (same data dir, so the topic is still there)."""
    if not b.alive():
        b.start()
    yield


@pytest.fixture(scope="module")
def topic(b):
    with w.Conn(b.bootstrap) as c:
        err, apis = w.api_versions(c, 0)
        assert err == 0
        w.check_group_api_versions(apis)
    t = unique_topic("grp")
    create_topic(b.bootstrap, t, partitions=TOPIC_PARTITIONS)
    return t


def new_group(prefix: str = "bad") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------
# a minimal classic-protocol member on its own connection
# ---------------------------------------------------------------------------

def find_coordinator(b, group: str, timeout: float = 20.0) -> None:
    """Waits until FindCoordinator names this broker for `group` (a new broker may answer
    COORDINATOR_NOT_AVAILABLE / LOAD_IN_PROGRESS while it sets up its offsets log)."""
    deadline = time.monotonic() + timeout
    with w.Conn(b.bootstrap) as c:
        while True:
            r = w.group_call(c, FC, w.find_coordinator_body(group))
            if r["error_code"] == NONE:
                assert (r["host"], r["port"]) == ("127.0.0.1", b.port), f"coordinator for {group}: {r}"
                return
            assert r["error_code"] in (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), \
                f"FindCoordinator({group}) -> {r}"
            assert time.monotonic() < deadline, f"no coordinator for {group} within {timeout}s: {r}"
            time.sleep(0.2)


class Member:
    """One classic-protocol consumer on its own connection (JoinGroup blocks, so every member
    that takes part in a rebalance needs one)."""

    def __init__(self, b, group: str, topic: str | None, protocol_type: str = "consumer",
                 protocols=None, session_timeout_ms: int = SESSION_MS):
        self.b = b
        self.group = group
        self.topic = topic
        self.conn = w.Conn(b.bootstrap, timeout=20.0)
        self.member_id = ""
        self.generation = -1
        self.leader = ""
        self.members: list[dict] = []
        self.protocol_type = protocol_type
        self.protocols = protocols if protocols is not None else \
            [("range", w.consumer_subscription([topic] if topic else []))]
        self.session_timeout_ms = session_timeout_ms

    def close(self):
        self.conn.close()

    def join_body(self, member_id: str | None = None, **kw) -> bytes:
        args = dict(protocol_type=self.protocol_type, protocols=self.protocols,
                    session_timeout_ms=self.session_timeout_ms, rebalance_timeout_ms=SESSION_MS)
        args.update(kw)
        return w.join_group_body(self.group, self.member_id if member_id is None else member_id, **args)

    def send_join(self, **kw) -> int:
        return w.group_send(self.conn, JOIN, self.join_body(**kw))

    def recv_join(self, corr: int) -> dict:
        r = w.group_recv(self.conn, JOIN, corr)
        if r["error_code"] == NONE:
            self.member_id, self.generation, self.leader = r["member_id"], r["generation_id"], r["leader"]
            self.members = r["members"]
        return r

    def join(self) -> dict:
        """The v4+ two-step join: MEMBER_ID_REQUIRED with an id, then the real join. Blocks until
        the rebalance completes."""
        if not self.member_id:
            r = self.recv_join(self.send_join(member_id=""))
            assert r["error_code"] == MEMBER_ID_REQUIRED and r["member_id"], \
                f"first JoinGroup v5 without member id -> {r}"
            self.member_id = r["member_id"]
        r = self.recv_join(self.send_join())
        assert r["error_code"] == NONE, f"JoinGroup({self.group}, {self.member_id}) -> {r}"
        return r

    def send_sync(self, assignments: dict[str, bytes] | None = None, generation: int | None = None) -> int:
        return w.group_send(self.conn, SYNC, w.sync_group_body(
            self.group, self.generation if generation is None else generation, self.member_id,
            assignments if self.member_id == self.leader else {}))

    def sync(self, assignments: dict[str, bytes] | None = None) -> dict:
        r = w.group_recv(self.conn, SYNC, self.send_sync(assignments))
        assert r["error_code"] == NONE, f"SyncGroup({self.group}, gen {self.generation}) -> {r}"
        return r

    def heartbeat(self, generation: int | None = None, member_id: str | None = None) -> int:
        return w.group_call(self.conn, HB, w.heartbeat_body(
            self.group, self.generation if generation is None else generation,
            self.member_id if member_id is None else member_id))["error_code"]

    def commit(self, offsets: dict[int, int | tuple], generation: int | None = None,
               member_id: str | None = None, topic: str | None = None) -> dict[int, int]:
        t = topic or self.topic
        res = w.group_call(self.conn, COMMIT, w.offset_commit_body(
            self.group, self.generation if generation is None else generation,
            self.member_id if member_id is None else member_id, {t: offsets}))
        return {p: err for (name, p), err in res.items() if name == t}

    def leave(self) -> dict:
        return w.group_call(self.conn, LEAVE, w.leave_group_body(self.group, [self.member_id]))


def all_partitions_to(member_ids, topic: str) -> dict[str, bytes]:
    """A range-like assignment of the topic's partitions over `member_ids` (sorted)."""
    ids = sorted(member_ids)
    out = {m: {topic: []} for m in ids}
    for p in range(TOPIC_PARTITIONS):
        out[ids[p % len(ids)]][topic].append(p)
    return {m: w.consumer_assignment(a) for m, a in out.items()}


def stable_member(b, topic: str, group: str | None = None) -> Member:
    """A one-member group, joined and synced (generation >= 1)."""
    group = group or new_group()
    find_coordinator(b, group)
    m = Member(b, group, topic)
    r = m.join()
    assert r["leader"] == m.member_id and r["generation_id"] >= 1, r
    assert [x["member_id"] for x in r["members"]] == [m.member_id], r["members"]
    m.sync(all_partitions_to([m.member_id], topic))
    assert m.heartbeat() == NONE
    return m


def fetch_offsets(b, group: str, topic: str, partitions) -> dict[int, dict]:
    with w.Conn(b.bootstrap) as c:
        r = w.group_call(c, FETCH, w.offset_fetch_body(group, {topic: list(partitions)}))
    assert r["error_code"] == NONE, f"OffsetFetch({group}) -> {r}"
    return {p: v for (name, p), v in r["partitions"].items() if name == topic}


def simple_commit(b, group: str, offsets: dict[str, dict]) -> dict[tuple[str, int], int]:
    """OffsetCommit with generation -1 and no member id (what an assign()-only consumer or the
    admin client sends)."""
    with w.Conn(b.bootstrap) as c:
        return w.group_call(c, COMMIT, w.offset_commit_body(group, -1, "", offsets))


# ---------------------------------------------------------------------------
# "still serving"
# ---------------------------------------------------------------------------

def group_roundtrip_ok(b, topic: str) -> None:
    """A new member of a new group goes through the whole classic protocol."""
    m = stable_member(b, topic)
    try:
        assert m.commit({0: 42, 1: (7, "meta")}) == {0: NONE, 1: NONE}
        got = fetch_offsets(b, m.group, topic, [0, 1, 2])
        assert got[0]["offset"] == 42 and got[0]["error_code"] == NONE, got
        assert (got[1]["offset"], got[1]["metadata"]) == (7, "meta"), got
        assert got[2]["offset"] == -1, got
        r = m.leave()
        assert r["error_code"] == NONE and [x["error_code"] for x in r["members"]] == [NONE], r
    finally:
        m.close()


def assert_still_serving(b, topic: str, *members: Member) -> None:
    b.assert_alive()
    try:
        for m in members:  # members that were there before the bad input still heartbeat
            assert m.heartbeat() == NONE, f"existing member {m.member_id} of {m.group} lost"
        with w.Conn(b.bootstrap) as c:
            err, apis = w.api_versions(c, 0)
            assert err == 0 and w.API_JOIN_GROUP in apis
    except OSError:
        # A broker that is dying (e.g. writing a backtrace) drops connections first.
        try:
            b.proc.wait(15)
        except Exception:
            pass
        b.assert_alive()  # raises BrokerDied with the log tail if it is gone
        raise
    group_roundtrip_ok(b, topic)
    roundtrip_ok(b.bootstrap)


def closed_or_error(conn: w.Conn, corr: int, api_key: int, what: str):
    """For requests that cannot be parsed: Kafka closes the connection. An error response
    (non-zero code) is also acceptable; a hang or a success is not. Returns the response or None."""
    try:
        r = conn.response(corr)
    except (ConnectionError, ConnectionResetError, BrokenPipeError):
        return None
    except socket.timeout:
        pytest.fail(f"{what}: no response and the connection was not closed within 20s")
    # Every group response at these versions starts with throttle_time_ms, error_code.
    err = None
    if r.remaining() >= 6:
        r.i32()
        err = r.i16()
    assert err not in (None, NONE), f"{what}: answered with error code {err}, expected a closed connection or an error"
    return err


# ---------------------------------------------------------------------------
# the happy path the other tests build on
# ---------------------------------------------------------------------------

def test_member_id_required_then_join(b, topic):
    group = new_group()
    find_coordinator(b, group)
    m = Member(b, group, topic)
    try:
        r = m.recv_join(m.send_join(member_id=""))
        assert r["error_code"] == MEMBER_ID_REQUIRED, f"JoinGroup v5 without member id -> {r}, expected 79"
        assert r["member_id"], f"MEMBER_ID_REQUIRED came without a member id: {r}"
        assert r["generation_id"] == -1, r
        m.member_id = r["member_id"]
        r = m.recv_join(m.send_join())
        assert r["error_code"] == NONE, r
        assert r["member_id"] == m.member_id and r["leader"] == m.member_id, r
        assert r["generation_id"] >= 1 and r["protocol_name"] == "range", r
        assert [(x["member_id"], x["metadata"]) for x in r["members"]] == \
            [(m.member_id, m.protocols[0][1])], "the leader must get every member's metadata verbatim"
        assignment = all_partitions_to([m.member_id], topic)
        s = m.sync(assignment)
        assert s["assignment"] == assignment[m.member_id], s
        assert m.heartbeat() == NONE
        r = m.leave()
        assert r["error_code"] == NONE and [(x["member_id"], x["error_code"]) for x in r["members"]] == \
            [(m.member_id, NONE)], r
        # Gone: the member is unknown now.
        assert m.heartbeat() == UNKNOWN_MEMBER_ID
    finally:
        m.close()
    assert_still_serving(b, topic)


# ---------------------------------------------------------------------------
# unknown members, stale generations
# ---------------------------------------------------------------------------

def test_unknown_member_id(b, topic):
    m = stable_member(b, topic)
    try:
        bogus = "bogus-" + uuid.uuid4().hex
        assert m.heartbeat(member_id=bogus) == UNKNOWN_MEMBER_ID, "Heartbeat with an unknown member id"
        with w.Conn(b.bootstrap) as c:
            r = w.group_call(c, SYNC, w.sync_group_body(m.group, m.generation, bogus, {}))
        assert r["error_code"] == UNKNOWN_MEMBER_ID, f"SyncGroup with an unknown member id -> {r}"
        assert m.commit({0: 5, 1: 6}, member_id=bogus) == {0: UNKNOWN_MEMBER_ID, 1: UNKNOWN_MEMBER_ID}, \
            "OffsetCommit with an unknown member id"
        assert fetch_offsets(b, m.group, topic, [0])[0]["offset"] == -1, "a refused commit was stored"
        # A group that does not exist has no members either.
        with w.Conn(b.bootstrap) as c:
            r = w.group_call(c, HB, w.heartbeat_body(new_group("nosuch"), 1, bogus))
        assert r["error_code"] == UNKNOWN_MEMBER_ID, f"Heartbeat to a group that does not exist -> {r}"
        assert_still_serving(b, topic, m)
    finally:
        m.close()


def test_stale_generation_after_rebalance(b, topic):
    a = stable_member(b, topic)
    c = Member(b, a.group, topic)
    try:
        gen1 = a.generation
        # c joins: the group starts rebalancing; c's JoinGroup waits for a to rejoin.
        r = c.recv_join(c.send_join(member_id=""))
        assert r["error_code"] == MEMBER_ID_REQUIRED, r
        c.member_id = r["member_id"]
        corr_c = c.send_join()
        deadline = time.monotonic() + 10
        while (err := a.heartbeat()) == NONE and time.monotonic() < deadline:
            time.sleep(0.1)
        assert err == REBALANCE_IN_PROGRESS, f"heartbeat of the old member while c joins -> {err}, expected 27"
        # The old generation is still the current one while the group prepares the rebalance.
        assert a.commit({0: 10}) == {0: NONE}, "commit with the current generation during PreparingRebalance"
        ja = a.recv_join(a.send_join())
        jc = c.recv_join(corr_c)
        assert ja["error_code"] == NONE and jc["error_code"] == NONE, (ja, jc)
        gen2 = ja["generation_id"]
        assert gen2 > gen1 and jc["generation_id"] == gen2, (gen1, ja, jc)
        assert ja["leader"] == jc["leader"] and ja["leader"] in (a.member_id, c.member_id), (ja, jc)
        leader, follower = (a, c) if ja["leader"] == a.member_id else (c, a)
        assert sorted(x["member_id"] for x in leader.members) == sorted([a.member_id, c.member_id])
        assert follower.members == [], "only the leader gets the member list"
        assignment = all_partitions_to([a.member_id, c.member_id], topic)
        corr_f = follower.send_sync()
        sl = leader.sync(assignment)
        sf = w.group_recv(follower.conn, SYNC, corr_f)
        assert sf["error_code"] == NONE, sf
        assert sl["assignment"] == assignment[leader.member_id] and sf["assignment"] == assignment[follower.member_id]

        assert a.heartbeat() == NONE and c.heartbeat() == NONE
        assert a.heartbeat(generation=gen1) == ILLEGAL_GENERATION, "Heartbeat with the previous generation"
        assert c.heartbeat(generation=gen1) == ILLEGAL_GENERATION, "Heartbeat of the new member with an old generation"
        assert a.heartbeat(generation=gen2 + 5) == ILLEGAL_GENERATION, "Heartbeat with a future generation"
        assert a.commit({0: 20, 1: 21}, generation=gen1) == {0: ILLEGAL_GENERATION, 1: ILLEGAL_GENERATION}, \
            "OffsetCommit with the previous generation"
        with w.Conn(b.bootstrap) as x:
            r = w.group_call(x, SYNC, w.sync_group_body(a.group, gen1, a.member_id, {}))
        assert r["error_code"] == ILLEGAL_GENERATION, f"SyncGroup with the previous generation -> {r}"
        got = fetch_offsets(b, a.group, topic, [0, 1])
        assert (got[0]["offset"], got[1]["offset"]) == (10, -1), f"a fenced commit was stored: {got}"
        assert a.commit({0: 30}) == {0: NONE}
        assert fetch_offsets(b, a.group, topic, [0])[0]["offset"] == 30
        assert_still_serving(b, topic, a, c)
    finally:
        a.close()
        c.close()


def test_follower_syncing_after_leader_stays_member(b, topic):
    """A follower whose SyncGroup arrives after the leader's (the group is already Stable) has
    synced: it must not be dropped when the rebalance timeout for missing SyncGroups expires
    (Kafka: removePendingSyncMember in the Stable branch of classicGroupSyncToClassicGroup)."""
    rebalance_ms = 2000
    a = stable_member(b, topic)
    c = Member(b, a.group, topic)
    try:
        r = c.recv_join(c.send_join(member_id="", rebalance_timeout_ms=rebalance_ms))
        assert r["error_code"] == MEMBER_ID_REQUIRED, r
        c.member_id = r["member_id"]
        corr_c = c.send_join(rebalance_timeout_ms=rebalance_ms)
        deadline = time.monotonic() + 10
        while a.heartbeat() == NONE and time.monotonic() < deadline:
            time.sleep(0.1)
        ja = a.recv_join(a.send_join(rebalance_timeout_ms=rebalance_ms))
        jc = c.recv_join(corr_c)
        assert ja["error_code"] == NONE and jc["error_code"] == NONE, (ja, jc)
        leader, follower = (a, c) if ja["leader"] == a.member_id else (c, a)
        assignment = all_partitions_to([a.member_id, c.member_id], topic)
        leader.sync(assignment)  # the group is Stable from here on
        sf = follower.sync()
        assert sf["assignment"] == assignment[follower.member_id], sf
        # Well past the rebalance timeout, both still heartbeating every 300 ms.
        end = time.monotonic() + rebalance_ms / 1000 * 2 + 1
        while time.monotonic() < end:
            got = {"leader": leader.heartbeat(), "follower": follower.heartbeat()}
            assert got == {"leader": NONE, "follower": NONE}, \
                (f"{time.monotonic() - end + rebalance_ms / 1000 * 2 + 1:.1f}s after the follower's "
                 f"SyncGroup (rebalance timeout {rebalance_ms} ms): heartbeats -> {got}")
            time.sleep(0.3)
        assert_still_serving(b, topic, a, c)
    finally:
        a.close()
        c.close()


# ---------------------------------------------------------------------------
# JoinGroup validation
# ---------------------------------------------------------------------------

def test_join_inconsistent_protocol_type(b, topic):
    m = stable_member(b, topic)  # protocol type "consumer", protocol "range"
    x = Member(b, m.group, None, protocol_type="connect", protocols=[("default", b"\x00\x01connect")])
    y = Member(b, m.group, topic, protocols=[("some-other-assignor", w.consumer_subscription([topic]))])
    try:
        # New members are checked before they get a member id (Kafka: classicGroupJoinNewMember).
        r = x.recv_join(x.send_join(member_id=""))
        assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, \
            f"JoinGroup with protocol type 'connect' into a 'consumer' group -> {r}, expected 23"
        r = y.recv_join(y.send_join(member_id=""))
        assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, \
            f"JoinGroup with a protocol no member supports -> {r}, expected 23"
        # The existing member is not disturbed (no rebalance was started).
        assert m.heartbeat() == NONE
        assert_still_serving(b, topic, m)
    finally:
        for mm in (m, x, y):
            mm.close()


def test_join_empty_protocols(b, topic):
    group = new_group()
    find_coordinator(b, group)
    m = Member(b, group, topic, protocols=[])
    try:
        r = m.recv_join(m.send_join(member_id=""))
        assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, f"JoinGroup with no protocols -> {r}, expected 23"
        r = m.recv_join(m.send_join(member_id="", protocols=[("range", b"")], protocol_type=""))
        assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, f"JoinGroup with protocol type '' -> {r}, expected 23"
        assert_still_serving(b, topic)
    finally:
        m.close()


@pytest.mark.parametrize("member_id", ["", "known"])
def test_join_session_timeout_below_minimum(b, topic, member_id):
    group = new_group()
    find_coordinator(b, group)
    m = Member(b, group, topic)
    try:
        if member_id:
            m.join()
        for timeout_ms in (MIN_SESSION_MS - 1, 1000, 0, -1):
            r = m.recv_join(m.send_join(session_timeout_ms=timeout_ms))
            assert r["error_code"] == INVALID_SESSION_TIMEOUT, \
                f"JoinGroup with session timeout {timeout_ms} ms (minimum {MIN_SESSION_MS}) -> {r}, expected 26"
        if not member_id:
            # Exactly the minimum is fine.
            r = m.recv_join(m.send_join(member_id="", session_timeout_ms=MIN_SESSION_MS))
            assert r["error_code"] == MEMBER_ID_REQUIRED, r
        assert_still_serving(b, topic)
    finally:
        m.close()


def test_empty_group_id(b, topic):
    """Kafka refuses an empty group id in JoinGroup, SyncGroup, Heartbeat and LeaveGroup with
    INVALID_GROUP_ID before looking for the group (GroupCoordinatorService)."""
    got = {}
    with w.Conn(b.bootstrap) as c:
        got["JoinGroup"] = w.group_call(c, JOIN, w.join_group_body(
            "", "", "consumer", [("range", w.consumer_subscription([topic]))]))["error_code"]
        got["SyncGroup"] = w.group_call(c, SYNC, w.sync_group_body("", 1, "m", {}))["error_code"]
        got["Heartbeat"] = w.group_call(c, HB, w.heartbeat_body("", 1, "m"))["error_code"]
        got["LeaveGroup"] = w.group_call(c, LEAVE, w.leave_group_body("", ["m"]))["error_code"]
    assert got == {k: INVALID_GROUP_ID for k in got}, f"group id '' -> {got}, expected 24 everywhere"
    assert_still_serving(b, topic)


# ---------------------------------------------------------------------------
# OffsetCommit validation
# ---------------------------------------------------------------------------

def test_commit_unknown_topic_or_partition(b, topic):
    group = new_group()
    find_coordinator(b, group)
    missing = unique_topic("nosuchtopic")
    res = simple_commit(b, group, {topic: {0: 11, TOPIC_PARTITIONS + 95: 12}, missing: {0: 1, 1: 2}})
    assert res == {(topic, 0): NONE, (topic, TOPIC_PARTITIONS + 95): UNKNOWN_TOPIC_OR_PARTITION,
                   (missing, 0): UNKNOWN_TOPIC_OR_PARTITION, (missing, 1): UNKNOWN_TOPIC_OR_PARTITION}, \
        f"OffsetCommit to an unknown topic / partition -> {res}"
    assert fetch_offsets(b, group, topic, [0])[0]["offset"] == 11, "the valid partition's commit was lost"
    # Committing must not auto-create the topic.
    assert not topic_exists(admin(b.bootstrap), missing), "OffsetCommit auto-created the topic"
    # Same from a real group member.
    m = stable_member(b, topic)
    try:
        assert m.commit({0: 3}, topic=missing) == {0: UNKNOWN_TOPIC_OR_PARTITION}
        assert_still_serving(b, topic, m)
    finally:
        m.close()


def test_commit_metadata_too_large(b, topic):
    group = new_group()
    find_coordinator(b, group)
    ok_meta, big_meta = "m" * METADATA_MAX, "M" * (METADATA_MAX + 1)
    res = simple_commit(b, group, {topic: {0: (100, ok_meta), 1: (200, big_meta)}})
    assert res == {(topic, 0): NONE, (topic, 1): OFFSET_METADATA_TOO_LARGE}, \
        f"metadata of {METADATA_MAX} / {METADATA_MAX + 1} bytes -> {res}, expected 0 / 12"
    res = simple_commit(b, group, {topic: {0: (101, big_meta)}})
    assert res == {(topic, 0): OFFSET_METADATA_TOO_LARGE}, res
    got = fetch_offsets(b, group, topic, [0, 1])
    assert (got[0]["offset"], got[0]["metadata"]) == (100, ok_meta), "the refused commit replaced the stored one"
    assert got[1]["offset"] == -1, got[1]
    # Far over the limit (the longest string the field can carry) from a group member.
    m = stable_member(b, topic)
    try:
        assert m.commit({2: (5, "x" * 32767)}) == {2: OFFSET_METADATA_TOO_LARGE}
        assert_still_serving(b, topic, m)
    finally:
        m.close()


# ---------------------------------------------------------------------------
# oversize and truncated JoinGroup requests
# ---------------------------------------------------------------------------

def test_join_oversize_protocol_metadata(b, topic):
    """2 MiB of protocol metadata, in three groups. Kafka takes it in JoinGroup (and fails later,
    when the group record is too large to store); an error code or a closed connection is also
    fine. What is not: a crash, a hang, unbounded memory, or other clients left unserved."""
    healthy = stable_member(b, topic)
    rss_before = b.rss_bytes()
    big = [("range", w.consumer_subscription([topic], user_data=b"\xab" * (2 << 20)))]
    outcomes = []
    closed = (ConnectionError, ConnectionResetError, BrokenPipeError)
    for _ in range(3):
        group = new_group("big")
        find_coordinator(b, group)
        m = Member(b, group, topic, protocols=big)
        try:
            r = m.recv_join(m.send_join(member_id=""))
            if r["error_code"] != MEMBER_ID_REQUIRED:
                assert r["error_code"] != NONE, f"JoinGroup v5 without member id succeeded: {r}"
                outcomes.append(f"join error {r['error_code']}")
                continue
            m.member_id = r["member_id"]
            r = m.recv_join(m.send_join())
            if r["error_code"] != NONE:
                outcomes.append(f"join error {r['error_code']}")
                continue
            assert [len(x["metadata"]) for x in r["members"]] == [len(big[0][1])], "metadata was altered"
            s = w.group_recv(m.conn, SYNC, m.send_sync(all_partitions_to([m.member_id], topic)))
            outcomes.append(f"joined, sync error {s['error_code']}")
        except closed:
            outcomes.append("closed")
        except socket.timeout:
            pytest.fail(f"JoinGroup with 2 MiB metadata: no response and no close within 20s ({outcomes})")
        finally:
            m.close()
    print("outcomes:", outcomes)
    b.assert_alive()
    grown = b.rss_bytes() - rss_before
    assert grown < 200 * 1024 * 1024, f"broker RSS grew by {grown >> 20} MiB after 3 JoinGroups of 2 MiB"
    assert_still_serving(b, topic, healthy)
    healthy.close()


def _join_v5_frame_body(group: str, topic: str) -> bytes:
    return w.join_group_body(group, "", "consumer", [("range", w.consumer_subscription([topic])),
                                                     ("roundrobin", w.consumer_subscription([topic]))])


@pytest.mark.parametrize("cut", ["mid-group-id", "before-protocols", "mid-protocol-name",
                                 "mid-metadata", "last-byte", "huge-array", "null-group-id"])
def test_join_truncated_or_malformed_body(b, topic, cut):
    healthy = stable_member(b, topic)
    group = new_group()
    body = _join_v5_frame_body(group, topic)
    gid = 2 + len(group)
    proto_type_end = gid + 4 + 4 + 2 + 2 + 2 + len("consumer")
    if cut == "mid-group-id":
        bad = body[:gid - 3]
    elif cut == "before-protocols":
        bad = body[:proto_type_end]
    elif cut == "mid-protocol-name":
        bad = body[:proto_type_end + 4 + 3]
    elif cut == "mid-metadata":
        bad = body[:proto_type_end + 4 + 2 + len("range") + 4 + 3]
    elif cut == "last-byte":
        bad = body[:-1]
    elif cut == "huge-array":  # 2^31-1 protocols announced, none sent
        bad = body[:proto_type_end] + w.i32(2**31 - 1) + b"\x00" * 16
    else:  # null (-1) group id where the field is not nullable
        bad = w.i16(-1) + body[gid:]
    with w.Conn(b.bootstrap, timeout=20.0) as c:
        corr = c.request(JOIN, w.GROUP_API_VERSIONS[JOIN], bad)
        closed_or_error(c, corr, JOIN, f"JoinGroup v5 body cut at {cut}")
    assert_still_serving(b, topic, healthy)
    healthy.close()
