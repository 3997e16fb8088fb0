"""Helpers for the consumer-group tests (test_groups.py): member processes, a paced producer,
a committed-offset monitor, and the checks on what they recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (ConsumerGroupTopicPartitions, KafkaException, Producer,
                             TopicPartition)

from conftest import _popen
from helpers import admin, consumer

WORKER = Path(__file__).resolve().parent / "group_worker.py"
OFFSET_INVALID = -1001


# ---------------------------------------------------------------------------
# member processes
# ---------------------------------------------------------------------------

@dataclass
class WorkerLog:
    name: str
    started: float | None = None
    records: list[tuple[int, int, int]] = field(default_factory=list)  # (partition, offset, seq)
    commits: list[tuple[float, dict[int, int]]] = field(default_factory=list)
    assigned: list[tuple[float, list[int]]] = field(default_factory=list)
    revoked: list[tuple[float, list[int]]] = field(default_factory=list)
    lost: list[tuple[float, list[int]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: float | None = None


def _plist(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def parse_worker_log(path: Path, name: str, records: bool = True) -> WorkerLog:
    """records=False skips the record lines (cheap enough to call in a polling loop)."""
    log = WorkerLog(name)
    if not path.exists():
        return log
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a torn last line of a SIGKILLed member
            parts = line.rstrip("\n").split(" ", 2)
            kind = parts[0]
            if kind == "R":
                if not records:
                    continue
                p, o, s = line.split()[1:4]
                log.records.append((int(p), int(o), int(s)))
                continue
            t = float(parts[1])
            rest = parts[2] if len(parts) > 2 else ""
            if kind == "C":
                log.commits.append((t, {int(p): int(o) for p, o in
                                        (x.split(":") for x in rest.split())}))
            elif kind == "A":
                log.assigned.append((t, _plist(rest)))
            elif kind == "V":
                log.revoked.append((t, _plist(rest)))
            elif kind == "L":
                log.lost.append((t, _plist(rest)))
            elif kind == "E":
                log.errors.append(f"{t:.3f} {rest}")
            elif kind == "S":
                log.started = t
            elif kind == "X":
                log.closed = t
    return log


class Worker:
    """A group_worker.py process."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str, out_dir: Path,
                 name: str, conf: dict | None = None):
        self.name = name
        self.client = client
        self.path = Path(out_dir) / f"{name}.log"
        self.stderr_path = Path(out_dir) / f"{name}.stderr"
        cmd = [sys.executable, str(WORKER), "--client", client, "--bootstrap", bootstrap,
               "--group", group, "--topic", topic, "--out", str(self.path), "--name", name,
               "--conf", json.dumps(conf or {})]
        self.stderr = open(self.stderr_path, "ab")
        self.terminated = False
        self.proc: subprocess.Popen = _popen(cmd, stdout=self.stderr, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL,
                                             cwd=str(Path(__file__).resolve().parent))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, records: bool = True) -> WorkerLog:
        return parse_worker_log(self.path, self.name, records)

    def processed_count(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as f:
            return sum(1 for line in f if line.startswith(b"R "))

    def terminate(self) -> None:
        """SIGTERM, once (a second one could hit the interpreter's shutdown, after the clean
        close, when the default action is back)."""
        if self.alive() and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"member {self.name} did not exit within {timeout}s of SIGTERM "
                                 f"(SIGKILLed)\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: SIGTERM, wait, require a clean exit (consumer closed, group left)."""
        self.terminate()
        rc = self.wait(timeout)
        assert rc == 0 and self.log().closed is not None, \
            f"member {self.name} exited with {rc} without a clean close\n{self.tail()}"

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the member does nothing (no heartbeat, no commit) until thaw()."""
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)

    def tail(self, n: int = 30) -> str:
        out = []
        for p in (self.path, self.stderr_path):
            try:
                lines = [l for l in p.read_text(errors="replace").splitlines() if not l.startswith("R ")]
            except OSError:
                continue
            out.append(f"--- {p.name} (last {n} non-record lines) ---\n" + "\n".join(lines[-n:]))
        return "\n".join(out)

    def close(self) -> None:
        self.kill()
        self.stderr.close()


# ---------------------------------------------------------------------------
# the producer
# ---------------------------------------------------------------------------

def seq_value(seq: int) -> bytes:
    return f"{seq:09d}:".encode() + b"v" * (seq % 37)


class LoadProducer(threading.Thread):
    """Produces `total` keyed records (acks=all) at about `rate` per second; the value of
    record n starts with "n:". Before record `gate_at` it waits for `gate` to be set (so a
    test can hold part of the load back). Records every acknowledgement (partition, offset, seq)."""

    def __init__(self, bootstrap: str, topic: str, total: int, rate: float,
                 gate_at: int | None = None, keys: int = 1000):
        super().__init__(daemon=True, name="group-load-producer")
        self.bootstrap = bootstrap
        self.topic = topic
        self.total = total
        self.rate = rate
        self.gate_at = gate_at
        self.gate = threading.Event()
        self.at_gate = threading.Event()
        self.keys = keys
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, int]] = []
        self.failed: list[tuple[int, str]] = []
        self.sent = 0
        self.error: BaseException | None = None
        self.unflushed: int | None = None
        self.done = threading.Event()
        self.abort = threading.Event()

    def stop(self) -> None:
        """Abandon whatever is not produced yet (test teardown)."""
        self.abort.set()
        self.gate.set()
        self.join(10)

    def _cb(self, err, msg):
        seq = int(msg.value().split(b":", 1)[0])
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), seq))
            else:
                self.failed.append((seq, str(err)))

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def run(self):
        try:
            p = Producer({
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": False,
                "linger.ms": 5,
                "message.timeout.ms": 90000,
                "request.timeout.ms": 10000,
                "socket.timeout.ms": 10000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 500,
                # no compression: kafka-python needs extra packages for lz4/snappy/zstd
                "compression.type": "none",
            })
            start = time.monotonic()
            paused = 0.0
            seq = 0
            while seq < self.total and not self.abort.is_set():
                if self.gate_at is not None and seq == self.gate_at and not self.gate.is_set():
                    self.at_gate.set()
                    t = time.monotonic()
                    while not self.gate.wait(0.05):
                        p.poll(0)
                    paused += time.monotonic() - t
                ahead = seq / self.rate - (time.monotonic() - start - paused)
                if ahead > 0:
                    p.poll(min(ahead, 0.05))
                    continue
                try:
                    p.produce(self.topic, key=f"k{seq % self.keys}".encode(), value=seq_value(seq),
                              on_delivery=self._cb)
                except BufferError:
                    p.poll(0.05)
                    continue
                seq += 1
                self.sent = seq
                if seq % 100 == 0:
                    p.poll(0)
            self.at_gate.set()
            if self.abort.is_set():
                p.purge()
                p.flush(1)
                return
            self.unflushed = p.flush(120)
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e
        finally:
            self.done.set()


# ---------------------------------------------------------------------------
# committed offsets
# ---------------------------------------------------------------------------

def committed_offsets(bootstrap: str, group: str, a=None, timeout: float = 15.0) -> dict[tuple[str, int], int]:
    """{(topic, partition): committed offset} of a group via AdminClient (OffsetFetch);
    partitions without a committed offset are left out."""
    a = a or admin(bootstrap)
    fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                        request_timeout=timeout)[group]
    res = fut.result(timeout)
    out = {}
    for tp in res.topic_partitions or []:
        if tp.error is not None:
            raise KafkaException(tp.error)
        if tp.offset != OFFSET_INVALID:
            out[(tp.topic, tp.partition)] = tp.offset
    return out


def topic_committed(bootstrap: str, group: str, topic: str, a=None) -> dict[int, int]:
    return {p: o for (t, p), o in committed_offsets(bootstrap, group, a).items() if t == topic}


def end_offsets(bootstrap: str, topic: str, partitions) -> dict[int, int]:
    c = consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}
    finally:
        c.close()


class OffsetMonitor(threading.Thread):
    """Polls a group's committed offsets every `interval` seconds and keeps every observation
    (monotonic time, {partition: offset}); failed polls (e.g. while the broker is down) are
    counted and skipped."""

    def __init__(self, bootstrap: str, group: str, topic: str, interval: float = 0.25):
        super().__init__(daemon=True, name=f"offset-monitor-{group}")
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.interval = interval
        self.stop_flag = threading.Event()
        self.observations: list[tuple[float, dict[int, int]]] = []
        self.failures: list[str] = []

    def run(self):
        a = admin(self.bootstrap, **{"socket.timeout.ms": 5000})
        while not self.stop_flag.is_set():
            try:
                obs = topic_committed(self.bootstrap, self.group, self.topic, a)
                self.observations.append((time.time(), obs))
            except Exception as e:  # noqa: BLE001
                self.failures.append(repr(e))
            self.stop_flag.wait(self.interval)

    def stop(self):
        self.stop_flag.set()
        self.join(30)

    def regressions(self) -> list[str]:
        """Per partition, an observed committed offset lower than an earlier observation
        (a partition that had a committed offset and then has none counts as well)."""
        best: dict[int, tuple[float, int]] = {}
        bad = []
        for t, obs in self.observations:
            for p, (t0, o0) in best.items():
                o = obs.get(p)
                if o is None or o < o0:
                    bad.append(f"partition {p}: committed {o0} at {t0:.3f}, then "
                               f"{'none' if o is None else o} at {t:.3f}")
            for p, o in obs.items():
                if p not in best or o > best[p][1]:
                    best[p] = (t, o)
        return bad


# ---------------------------------------------------------------------------
# in-process members (confluent-kafka), for assignment and admin checks
# ---------------------------------------------------------------------------

class Member(threading.Thread):
    """A confluent-kafka consumer subscribed to `topic` (a name or a list of names), polled by
    its own thread (which also serves its rebalance callbacks and closes it). Keeps its
    current assignment and every assign/revoke/lost callback as (time, kind, partitions).

    `assignment` and the event partitions are partition numbers of the first topic;
    `assignment_tps` is the whole assignment as (topic, partition) pairs."""

    def __init__(self, bootstrap: str, group: str, topic, name: str, conf: dict | None = None):
        super().__init__(daemon=True, name=f"member-{name}")
        self.member_name = name
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.topic = self.topics[0]
        self.conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "socket.timeout.ms": 10000}
        self.conf.update(conf or {})
        self.lock = threading.Lock()
        self.events: list[tuple[float, str, frozenset]] = []
        self._tps: frozenset[tuple[str, int]] = frozenset()
        self.consumed = 0
        self.stop_flag = threading.Event()
        self.closed = threading.Event()
        self.error: BaseException | None = None
        self.commit_request: dict[int, int] | None = None
        self.commit_done = threading.Event()
        self.commit_error: BaseException | None = None

    @property
    def assignment_tps(self) -> frozenset[tuple[str, int]]:
        with self.lock:
            return self._tps

    @property
    def assignment(self) -> frozenset[int]:
        return frozenset(p for t, p in self.assignment_tps if t == self.topic)

    def events_since(self, t: float, all_topics: bool = False) -> list[tuple[float, str, frozenset]]:
        with self.lock:
            evs = [e for e in self.events if e[0] >= t]
        if all_topics:
            return evs
        return [(t0, k, frozenset(p for tt, p in ps if tt == self.topic)) for t0, k, ps in evs]

    def _ev(self, kind, parts):
        with self.lock:
            self.events.append((time.time(), kind, frozenset((tp.topic, tp.partition) for tp in parts)))

    def commit(self, offsets: dict[int, int], timeout: float = 30.0) -> None:
        """Commit explicit offsets (of the first topic) from the polling thread; raises what
        the commit raised."""
        self.commit_done.clear()
        self.commit_error = None
        self.commit_request = offsets
        assert self.commit_done.wait(timeout), f"{self.member_name}: commit did not finish"
        if self.commit_error is not None:
            raise self.commit_error

    def run(self):
        from confluent_kafka import Consumer
        try:
            c = Consumer(self.conf)
            c.subscribe(self.topics,
                        on_assign=lambda _c, ps: self._ev("assign", ps),
                        on_revoke=lambda _c, ps: self._ev("revoke", ps),
                        on_lost=lambda _c, ps: self._ev("lost", ps))
            while not self.stop_flag.is_set():
                msgs = c.consume(num_messages=100, timeout=0.1)
                for m in msgs:
                    if m.error() is None:
                        self.consumed += 1
                    elif m.error().fatal():
                        raise KafkaException(m.error())
                a = frozenset((tp.topic, tp.partition) for tp in c.assignment())
                with self.lock:
                    self._tps = a
                if self.commit_request is not None:
                    req, self.commit_request = self.commit_request, None
                    try:
                        res = c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in req.items()],
                                       asynchronous=False)
                        bad = [tp for tp in res if tp.error is not None]
                        if bad:
                            raise KafkaException(bad[0].error)
                    except BaseException as e:  # noqa: BLE001
                        self.commit_error = e
                    self.commit_done.set()
            c.close()
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e
        finally:
            self.closed.set()

    def close(self, timeout: float = 30.0) -> None:
        self.stop_flag.set()
        assert self.closed.wait(timeout), f"{self.member_name}: close did not finish in {timeout}s"
        assert self.error is None, f"{self.member_name}: {self.error!r}"


def stable_assignment(members: list[Member], partitions: int | None = None,
                      tps: set[tuple[str, int]] | None = None, hold: float = 2.0,
                      timeout: float = 60.0) -> dict:
    """Waits until every partition (0..partitions-1 of the members' first topic, or every
    (topic, partition) of `tps`) is assigned to exactly one member, each member has at least
    one when there are enough, and nothing changed for `hold` seconds. Returns
    {member name: assignment} (partition numbers, or (topic, partition) pairs with `tps`)."""
    if tps is None:
        want = list(range(partitions))
        get = lambda m: m.assignment  # noqa: E731
    else:
        want = sorted(tps)
        get = lambda m: m.assignment_tps  # noqa: E731
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    last = None
    cur = {}
    while time.monotonic() < deadline:
        for m in members:
            assert m.error is None, f"{m.member_name}: {m.error!r}"
        cur = {m.member_name: get(m) for m in members}
        allp = sorted(p for a in cur.values() for p in a)
        ok = allp == want and (len(members) > len(want) or all(cur.values()))
        if ok and cur == last:
            if time.monotonic() - since >= hold:
                return cur
        else:
            since = time.monotonic()
        last = cur if ok else None
        time.sleep(0.1)
    raise AssertionError(f"no stable assignment of {len(want)} partitions over "
                         f"{[m.member_name for m in members]} within {timeout}s; "
                         f"last seen: { {k: sorted(v) for k, v in cur.items()} }")


def describe_group(bootstrap: str, group: str, a=None, timeout: float = 15.0):
    a = a or admin(bootstrap)
    return a.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)


# ---------------------------------------------------------------------------
# OffsetDelete (API 47): neither confluent-kafka's Python AdminClient (2.16) nor
# kafka-python/aiokafka expose it, so it is sent by hand (v0, single broker = coordinator).
# ---------------------------------------------------------------------------

API_OFFSET_DELETE = 47


def offset_delete(bootstrap: str, group: str, topic: str, partitions) -> tuple[int, dict[int, int]]:
    """-> (top-level error code, {partition: error code})."""
    import kafka_wire as kw
    body = (kw.string(group) + kw.i32(1) + kw.string(topic) + kw.i32(len(partitions))
            + b"".join(kw.i32(p) for p in partitions))
    with kw.Conn(bootstrap) as conn:
        corr = conn.request(API_OFFSET_DELETE, 0, body)
        r = conn.response(corr)
        err = r.i16()
        r.i32()  # throttle
        out = {}
        for _ in range(r.i32()):
            name = r.string()
            for _ in range(r.i32()):
                p, e = r.i32(), r.i16()
                if name == topic:
                    out[p] = e
        return err, out


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

def commit_regressions(logs: list[WorkerLog]) -> list[str]:
    """All members' acknowledged commits in acknowledgement-time order: per partition the
    committed offset never goes down."""
    events = sorted((t, log.name, offs) for log in logs for t, offs in log.commits)
    last: dict[int, tuple[float, str, int]] = {}
    bad = []
    for t, name, offs in events:
        for p, o in offs.items():
            if p in last and o < last[p][2]:
                t0, n0, o0 = last[p]
                bad.append(f"partition {p}: {n0} committed {o0} at {t0:.3f}, then {name} committed "
                           f"{o} at {t:.3f}")
            if p not in last or o >= last[p][2]:
                last[p] = (t, name, o)
    return bad


def last_commits_before(logs: list[WorkerLog], t_limit: float) -> dict[int, int]:
    """Per partition, the highest offset whose commit was acknowledged before t_limit."""
    out: dict[int, int] = {}
    for log in logs:
        for t, offs in log.commits:
            if t < t_limit:
                for p, o in offs.items():
                    out[p] = max(out.get(p, -1), o)
    return out


def coverage(acked: list[tuple[int, int, int]], logs: list[WorkerLog]) -> tuple[list, list]:
    """(acknowledged records nobody processed, processed records whose value is not the one
    acknowledged at that (partition, offset))."""
    processed: dict[tuple[int, int], int] = {}
    for log in logs:
        for p, o, s in log.records:
            processed.setdefault((p, o), s)
    missing = [(p, o, s) for p, o, s in acked if (p, o) not in processed]
    wrong = [(p, o, s, processed[(p, o)]) for p, o, s in acked
             if (p, o) in processed and processed[(p, o)] != s]
    return missing, wrong


def summarize(logs: list[WorkerLog]) -> str:
    lines = []
    for log in logs:
        per_p = defaultdict(int)
        for p, _, _ in log.records:
            per_p[p] += 1
        lines.append(f"{log.name}: {len(log.records)} records {dict(sorted(per_p.items()))}, "
                     f"{len(log.commits)} commits, assigned {[a for _, a in log.assigned][-3:]}, "
                     f"revoked {len(log.revoked)}x, closed={log.closed is not None}, "
                     f"errors {len(log.errors)} {log.errors[-3:]}")
    return "\n".join(lines)


def wait_for(pred, timeout: float, interval: float = 0.2, msg: str = "condition", on_timeout=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    extra = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {msg} (last: {last!r})\n{extra}")


os.environ.setdefault("PYTHONUNBUFFERED", "1")
