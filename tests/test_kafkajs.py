"""kafkajs (Node.js) consumer group under churn: members leave gracefully, are SIGKILLed and
join while 200k records flow; every record is processed at least once, committed positions
never go backwards, and a restarted group resumes exactly at its committed offsets.

The clients are `tests/js/group_churn.js` processes (one role each: consume, produce, monitor),
so a single consumer can be SIGKILLed. Each prints JSON lines, kept next to the broker log in
the test's work dir (`<name>.out.jsonl`, kafkajs's own log in `<name>.stderr.log`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO, _popen
from helpers import create_topic, unique_topic

JS_DIR = REPO / "tests" / "js"
SCRIPT = JS_DIR / "group_churn.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed (scripts/test.sh installs it)")

PARTITIONS = 12
RECORDS = 200_000
EXTRA = 12_000  # produced while the group is stopped, read after the restart
RATE = 8_000  # records/s: ~25 s of production, long enough for the churn below
SESSION_TIMEOUT_MS = 6_000  # the broker's default group.min.session.timeout.ms
# Shorter than the gaps between the churn steps, so that every step is also checked for members
# dropped when a rebalance timeout expires (kafkajs's default is 60 s).
REBALANCE_TIMEOUT_MS = 4_000


@pytest.fixture(scope="module")
def node() -> str:
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"{JS_DIR}/node_modules is missing: run `npm ci` in tests/js "
                    f"(scripts/test.sh does)")
    return NODE


class NodeRole:
    """One `node group_churn.js ROLE` process; its stdout (JSON lines) goes to a file."""

    def __init__(self, node: str, workdir: Path, role: str, name: str, *args):
        self.name = name
        self.out_path = workdir / f"{name}.out.jsonl"
        self.err_path = workdir / f"{name}.stderr.log"
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = _popen([node, str(SCRIPT), role, "--name", name, *map(str, args)],
                               stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=JS_DIR, env=env)
        self.events: list[dict] = []
        self._buf = b""
        self._pos = 0

    def poll(self) -> list[dict]:
        """New events since the last call (complete lines only)."""
        with open(self.out_path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        self._pos += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        new = []
        for line in lines:
            if line.strip():
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = {"ev": "unparsable", "line": line[:200].decode("utf-8", "replace")}
                new.append(ev)
        self.events.extend(new)
        return new

    def of(self, kind: str) -> list[dict]:
        self.poll()
        return [e for e in self.events if e["ev"] == kind]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM\n{self.tail()}")

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def tail(self, n: int = 15) -> str:
        try:
            err = self.err_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            err = []
        self.poll()
        evs = [json.dumps(e)[:300] for e in self.events[-n:]]
        return (f"--- {self.name} (exit {self.proc.poll()}) last events ---\n" + "\n".join(evs)
                + f"\n--- {self.name} stderr ---\n" + "\n".join(err))


def wait_for(pred, timeout: float, what: str, roles=(), interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(interval)
    tails = "\n".join(r.tail() for r in roles)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


def current_assignment(consumers: list[NodeRole]) -> dict[str, list[int]] | None:
    """The latest assignment of each live consumer, if together they are a complete, disjoint
    assignment of the topic with every member holding something."""
    latest = {}
    for c in consumers:
        if not c.alive():
            continue
        a = c.of("assign")
        if not a:
            return None
        latest[c.name] = a[-1]["parts"]
    parts = [p for ps in latest.values() for p in ps]
    if sorted(parts) != list(range(PARTITIONS)) or any(not ps for ps in latest.values()):
        return None
    return latest


def backwards_commits(commits: list[dict]) -> list[str]:
    """Commits of one partition (from all workers) whose offset is lower than that of a commit
    that had already completed (t1) before this one was sent (t0)."""
    by_end = sorted(commits, key=lambda c: c["t1"])
    problems = []
    i = 0
    best = None  # the highest-offset commit completed so far
    for c in sorted(commits, key=lambda c: c["t0"]):
        while i < len(by_end) and by_end[i]["t1"] < c["t0"]:
            if best is None or by_end[i]["o"] > best["o"]:
                best = by_end[i]
            i += 1
        if best is not None and c["o"] < best["o"]:
            problems.append(f"commit {c['o']} by {c['who']} (sent at {c['t0']}) after "
                            f"{best['o']} by {best['who']} had completed at {best['t1']}")
    return problems


@pytest.mark.slow
def test_kafkajs_group_churn(strata_factory, node):
    b = strata_factory("--group-initial-rebalance-delay-ms", 0, name="kafkajs")
    workdir = b.workdir
    topic = unique_topic("churn")
    group = f"churn-{topic}"
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    t_start = time.monotonic()

    roles: list[NodeRole] = []

    def start(role: str, name: str, *args) -> NodeRole:
        r = NodeRole(node, workdir, role, name, "--brokers", b.bootstrap, "--topic", topic, *args)
        roles.append(r)
        return r

    def consumer(name: str) -> NodeRole:
        return start("consume", name, "--group", group, "--session-timeout-ms", SESSION_TIMEOUT_MS,
                     "--rebalance-timeout-ms", REBALANCE_TIMEOUT_MS)

    try:
        monitor = start("monitor", "monitor", "--group", group, "--interval-ms", 200)
        consumers = [consumer(f"c{i}") for i in (1, 2, 3)]
        wait_for(lambda: current_assignment(consumers), 45, "3 kafkajs members sharing 12 partitions",
                 roles)

        # ---------------------------------------------------------------- churn under load
        producer = start("produce", "producer", "--from", 0, "--count", RECORDS,
                         "--partitions", PARTITIONS, "--rate", RATE)

        def acked() -> int:
            p = producer.of("progress")
            return p[-1]["acked"] if p else 0

        churn_log = []

        def at(fraction: float, what: str):
            wait_for(lambda: acked() >= fraction * RECORDS or not producer.alive(), 120,
                     f"producer reaching {fraction:.0%} before '{what}'", roles)
            churn_log.append(f"{time.monotonic() - t_start:5.1f}s acked={acked()}: {what}")

        at(0.15, "c1 leaves gracefully (SIGTERM -> disconnect)")
        c1 = consumers[0]
        rc = c1.terminate(30)
        assert rc == 0 and c1.of("stopped"), f"c1 did not stop cleanly (exit {rc})\n{c1.tail()}"
        at(0.35, "c4 joins")
        consumers.append(consumer("c4"))
        at(0.55, "c2 SIGKILLed")
        consumers[1].kill()
        at(0.75, "c5 joins")
        consumers.append(consumer("c5"))

        rc = producer.proc.wait(120)
        done = producer.of("done")
        assert rc == 0 and done and done[-1]["acked"] == RECORDS, \
            f"producer failed (exit {rc})\n{producer.tail()}"
        churn_log.append(f"{time.monotonic() - t_start:5.1f}s producer done")

        # ---------------------------------------------------------------- drain
        def processed_ids(rs) -> set[int]:
            s: set[int] = set()
            for r in rs:
                for e in r.of("batch"):
                    s.update(e["ids"])
            return s

        def all_committed(total: int):
            offs = monitor.of("offsets")
            if not offs:
                return None
            last = offs[-1]
            hw = {int(k): v for k, v in last["hw"].items()}
            o = {int(k): v for k, v in last["o"].items()}
            if sum(hw.values()) != total or any(o.get(p) != hw[p] for p in range(PARTITIONS)):
                return None
            return o

        want = set(range(RECORDS))
        wait_for(lambda: want <= processed_ids(roles) and all_committed(RECORDS), 60,
                 "every record processed and committed up to the high watermarks", roles)
        churn_log.append(f"{time.monotonic() - t_start:5.1f}s all {RECORDS} processed and committed")

        # ---------------------------------------------------------------- clean stop
        live = [c for c in consumers if c.alive()]
        assert len(live) == 3, [c.name for c in live]
        for c in live:
            rc = c.terminate(30)
            assert rc == 0 and c.of("stopped"), f"{c.name} did not stop cleanly (exit {rc})\n{c.tail()}"
        # A fresh poll after every member has left.
        n = len(monitor.of("offsets"))
        wait_for(lambda: len(monitor.of("offsets")) > n + 1, 10, "a monitor poll after the stop", roles)
        committed_at_stop = all_committed(RECORDS)
        assert committed_at_stop, f"committed offsets changed after the stop: {monitor.of('offsets')[-1]}"
        churn_log.append(f"{time.monotonic() - t_start:5.1f}s group stopped, committed {committed_at_stop}")

        # Records the group has not seen yet, then the group comes back.
        extra = start("produce", "producer-extra", "--from", RECORDS, "--count", EXTRA,
                      "--partitions", PARTITIONS)
        rc = extra.proc.wait(60)
        assert rc == 0 and extra.of("done"), f"extra producer failed (exit {rc})\n{extra.tail()}"

        restarted = [consumer("c6"), consumer("c7")]
        want_all = set(range(RECORDS + EXTRA))
        wait_for(lambda: want_all <= processed_ids(roles) and all_committed(RECORDS + EXTRA), 60,
                 "the restarted group to process the records produced while it was stopped", roles)
        churn_log.append(f"{time.monotonic() - t_start:5.1f}s restarted group caught up")
        for c in restarted:
            rc = c.terminate(30)
            assert rc == 0, f"{c.name} exit {rc}\n{c.tail()}"
        monitor.terminate(15)
    finally:
        for r in roles:
            r.kill()

    # -------------------------------------------------------------------- verdicts
    workers = [r for r in roles if r.name.startswith("c")]
    for r in roles:
        r.poll()
    fatal = [(r.name, e) for r in roles for e in r.events if e["ev"] in ("fatal", "unparsable")]
    assert not fatal, f"client errors: {fatal[:5]}"

    # 1. Every record processed at least once; every batch is from the partition its ids map to.
    seen = defaultdict(int)
    for r in workers:
        for e in r.of("batch"):
            for i in e["ids"]:
                seen[i] += 1
            wrong = [i for i in e["ids"] if i % PARTITIONS != e["p"]]
            assert not wrong, f"{r.name}: partition {e['p']} delivered ids of other partitions: {wrong[:5]}"
            assert len(e["ids"]) == e["last"] - e["first"] + 1, \
                f"{r.name}: batch {e['p']}@{e['first']}..{e['last']} has {len(e['ids'])} records (gap)"
    missing = sorted(set(range(RECORDS + EXTRA)) - set(seen))
    assert not missing, f"{len(missing)} records never processed, e.g. {missing[:10]}"
    unexpected = sorted(set(seen) - set(range(RECORDS + EXTRA)))
    assert not unexpected, f"records that were never produced: {unexpected[:10]}"
    duplicates = sum(n - 1 for n in seen.values())

    # 2. Commits come after processing, and no committed position goes backwards.
    commits = defaultdict(list)
    for r in workers:
        done_upto: dict[int, int] = {}
        for e in r.events:
            if e["ev"] == "batch":
                done_upto[e["p"]] = e["last"] + 1
            elif e["ev"] == "commit":
                assert done_upto.get(e["p"]) == e["o"], \
                    f"{r.name} committed {e['p']}@{e['o']} before processing up to it ({done_upto.get(e['p'])})"
                commits[e["p"]].append(dict(e, who=r.name))
    problems = [f"partition {p}: {m}" for p in sorted(commits) for m in backwards_commits(commits[p])]
    assert not problems, "committed offsets went backwards (worker commit logs):\n" + "\n".join(problems[:10])

    polls = monitor.of("offsets")
    assert len(polls) > 50, f"only {len(polls)} monitor polls"
    last_seen: dict[int, tuple[int, int]] = {}
    regressions = []
    for e in polls:
        for k, off in e["o"].items():
            p = int(k)
            prev = last_seen.get(p)
            if prev is not None and off < prev[0]:
                regressions.append(f"partition {p}: committed {prev[0]} at {prev[1]}, then {off} at {e['t']}")
            if prev is None or off >= prev[0]:
                last_seen[p] = (off, e["t"])
    assert not regressions, "admin.fetchOffsets saw committed offsets go backwards:\n" + "\n".join(regressions[:10])

    # 3. After the clean stop, the restarted members started exactly at the committed offsets.
    first_after = {}
    for r in restarted:
        for e in r.of("batch"):
            first_after[e["p"]] = min(first_after.get(e["p"], e["first"]), e["first"])
    for p in range(PARTITIONS):
        assert first_after.get(p) == committed_at_stop[p], \
            (f"partition {p}: the restarted group started at {first_after.get(p)}, "
             f"committed offset at the stop was {committed_at_stop[p]}")

    monitor_errs = monitor.of("monitor_err")
    crashes = [(r.name, e.get("err")) for r in workers for e in r.events if e["ev"] == "crash"]
    rebalances = sum(len(r.of("assign")) for r in workers)
    print("\n".join(churn_log))
    print(f"processed {len(seen)} records, {duplicates} duplicate deliveries, "
          f"{sum(len(v) for v in commits.values())} commits, {rebalances} assignments, "
          f"{len(polls)} monitor polls ({len(monitor_errs)} errors), kafkajs crashes: {crashes[:5]}, "
          f"total {time.monotonic() - t_start:.1f}s")

    # 4. A live member is never evicted: each worker keeps its member id through every
    # rebalance (kafkajs rejoins with the id it has), and no commit of a live member is refused
    # as UNKNOWN_MEMBER_ID.
    evicted = []
    for r in workers:
        ids = [e["member"] for e in r.of("assign")]
        if len(set(ids)) > 1:
            evicted.append(f"{r.name} rejoined as a new member: {ids}")
        evicted += [f"{r.name}: commit {e['p']}@{e['o']} -> {e['err']} at {e['t']}"
                    for e in r.of("commit_err") if e["err"] == "UNKNOWN_MEMBER_ID"]
    assert not evicted, "live members were dropped from the group:\n" + "\n".join(evicted[:10])

    b.assert_alive()
