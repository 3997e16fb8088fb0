#!/usr/bin/env python3
"""Consumer-group benchmark: rebalance time and OffsetCommit throughput, with confluent-kafka
(librdkafka) clients against one Strata broker.

    .venv/bin/python bench/groups.py                      # starts its own broker (target/release/strata)
    .venv/bin/python bench/groups.py --bootstrap H:P      # an already running broker
    .venv/bin/python bench/groups.py --reps 5 --commit-seconds 10 --commit-groups 4 --json out.json

1. Rebalance time. A group of 3 members on a topic of 12 partitions grows to 6 (3 new members
   subscribe) and shrinks back to 3 (the 3 newest members close(), i.e. leave the group); each
   step is repeated --reps times. The time of a step runs from the membership change (the new
   consumers are created, or close() is called) to the moment the last member received the
   assignment that makes the group complete again: every partition owned by exactly one live
   member and the partitions spread evenly (12/N each). It is measured in the members' own
   rebalance callbacks and accepted once the assignment held still for --settle-ms. Before each
   change the harness pauses for a random 0..--jitter-ms (default: one heartbeat interval), so
   that the changes do not all land at the same phase of the members' heartbeat timers. Classic
   protocol (JoinGroup/SyncGroup, librdkafka's defaults: eager range/roundrobin assignors,
   heartbeat.interval.ms 3000, session.timeout.ms 45000) and, if the broker advertises
   ConsumerGroupHeartbeat (API 68), the KIP-848 protocol (group.protocol=consumer).
2. OffsetCommit throughput. Synchronous commits (commit(offsets=..., asynchronous=False), one
   partition per commit by default) in a loop for --commit-seconds: from one consumer, and from
   --commit-groups consumers at once, each in its own group (one thread each; librdkafka
   releases the GIL while it waits). Every consumer is a subscribed group member, so its
   commits carry a member id and generation.

Prints a Markdown results table (and the machine) on stdout; --json writes the raw numbers.
When it starts its own broker, it copies the binary first (a concurrent rebuild cannot swap it)
and runs it with --group-initial-rebalance-delay-ms 0 plus any --broker-arg; data goes to
target/bench-data/groups (removed afterwards unless --keep-data).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import libversion as rdkafka_version
from confluent_kafka import version as ck_version
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- broker
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    os.setsid()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary: Path, data_root: Path, extra_args: list[str]):
        self.dir = data_root
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "bin").mkdir(parents=True)
        self.bin = self.dir / "bin" / "strata"
        shutil.copy2(binary, self.bin)
        self.sha = hashlib.sha256(self.bin.read_bytes()).hexdigest()[:16]
        self.port, self.admin_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.cmd = [str(self.bin), "serve", "--listen", self.bootstrap, "--advertise", self.bootstrap,
                    "--data-dir", str(self.dir / "data"), "--admin-listen", f"127.0.0.1:{self.admin_port}",
                    "--group-initial-rebalance-delay-ms", "0", *extra_args]
        self.log_path = self.dir / "broker.log"
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen(self.cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent, env=dict(os.environ, NO_COLOR="1"))
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"broker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"broker not healthy within 30 s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0, by hand (the supported API keys decide what can be measured)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        hdr = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"
        s.sendall(struct.pack(">i", len(hdr)) + hdr)

        def recv(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            return buf

        (n,) = struct.unpack(">i", recv(4))
        data = recv(n)
    _corr, err, count = struct.unpack(">ihi", data[:10])
    out = {}
    for i in range(count):
        k, lo, hi = struct.unpack(">hhh", data[10 + 6 * i:16 + 6 * i])
        out[k] = (lo, hi)
    return out


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


# ----------------------------------------------------------------------------------- members
class Member(threading.Thread):
    """One consumer polling in its own thread; records every assignment change with the time of
    the rebalance callback that caused it."""

    def __init__(self, name: str, conf: dict, topic: str):
        super().__init__(name=name, daemon=True)
        self.conf = conf
        self.topic = topic
        self.stop_requested = threading.Event()
        self.closed = threading.Event()
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.assignment: frozenset[int] = frozenset()
        self.changed_at = 0.0
        self.history: list[tuple[float, frozenset[int]]] = []
        self.error: BaseException | None = None
        self._cb_time = 0.0

    def _cb(self, *_args):
        self._cb_time = time.monotonic()

    def run(self):
        try:
            c = Consumer(self.conf)
            c.subscribe([self.topic], on_assign=self._cb, on_revoke=self._cb, on_lost=self._cb)
            self.ready.set()
            while not self.stop_requested.is_set():
                msg = c.poll(0.05)
                if msg is not None and msg.error() and msg.error().fatal():
                    raise KafkaException(msg.error())
                a = frozenset(tp.partition for tp in c.assignment())
                if a != self.assignment:
                    with self.lock:
                        self.assignment = a
                        self.changed_at = self._cb_time or time.monotonic()
                        self.history.append((self.changed_at, a))
            c.close()
        except BaseException as e:  # reported by the main thread
            self.error = e
        finally:
            with self.lock:
                self.assignment = frozenset()
            self.closed.set()

    def state(self) -> tuple[float, frozenset[int]]:
        with self.lock:
            return self.changed_at, self.assignment


def complete(members: list[Member], partitions: int) -> tuple[bool, float]:
    """(is the group's assignment complete and even, time of the latest change among members)."""
    states = [m.state() for m in members]
    parts = [p for _, a in states for p in a]
    n = len(members)
    ok = (len(parts) == partitions and set(parts) == set(range(partitions))
          and all(partitions // n <= len(a) <= -(-partitions // n) for _, a in states))
    return ok, max(t for t, _ in states)


def wait_complete(members: list[Member], partitions: int, timeout: float, settle: float) -> float | None:
    """Time of the change that completed the group (monotonic), or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if m.error:
                raise RuntimeError(f"member {m.name} failed: {m.error!r}")
        ok, t = complete(members, partitions)
        if ok and time.monotonic() - t >= settle:
            return t
        time.sleep(0.02)
    return None


def rebalance_bench(bootstrap: str, protocol: str, reps: int, partitions: int, settle: float,
                    step_timeout: float, extra_conf: dict, jitter: float, rng: random.Random) -> dict:
    topic = f"bench-rebalance-{protocol}-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions)
    group = f"bench-rebalance-{protocol}-{uuid.uuid4().hex[:6]}"
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    conf.update(extra_conf)
    seq = iter(range(10_000))

    def spawn(k: int) -> list[Member]:
        ms = [Member(f"{protocol}-m{next(seq)}", dict(conf), topic) for _ in range(k)]
        for m in ms:
            m.start()
        return ms

    results = {"3->6": [], "6->3": [], "timeouts": {"3->6": 0, "6->3": 0}, "jitter_ms": jitter * 1000,
               "config": {k: v for k, v in conf.items() if k not in ("bootstrap.servers", "group.id")}}
    base = spawn(3)
    try:
        log(f"[{protocol}] forming the initial group of 3")
        if wait_complete(base, partitions, step_timeout * 2, settle) is None:
            raise RuntimeError(f"[{protocol}] the initial 3-member group never became complete")
        for rep in range(reps):
            # Members heartbeat on a fixed period that restarts at every sync; a random pause
            # spreads the membership changes over that period instead of hitting one phase of it.
            time.sleep(rng.uniform(0, jitter))
            t0 = time.monotonic()
            extra = spawn(3)
            t = wait_complete(base + extra, partitions, step_timeout, settle)
            if t is None:
                results["timeouts"]["3->6"] += 1
            else:
                results["3->6"].append((t - t0) * 1000)
            log(f"[{protocol}] rep {rep + 1}/{reps}: 3 -> 6 "
                f"{'timeout' if t is None else f'{(t - t0) * 1000:.0f} ms'}")
            time.sleep(rng.uniform(0, jitter))
            t0 = time.monotonic()
            for m in extra:
                m.stop_requested.set()
            t = wait_complete(base, partitions, step_timeout, settle)
            if t is None:
                results["timeouts"]["6->3"] += 1
            else:
                results["6->3"].append((t - t0) * 1000)
            log(f"[{protocol}] rep {rep + 1}/{reps}: 6 -> 3 "
                f"{'timeout' if t is None else f'{(t - t0) * 1000:.0f} ms'}")
            for m in extra:
                m.closed.wait(30)
            if t is None:  # the group is in an unknown state: start over with a fresh one
                break
    finally:
        for m in base:
            m.stop_requested.set()
        for m in base:
            m.closed.wait(30)
    return results


# ----------------------------------------------------------------------------------- commits
def commit_worker(bootstrap: str, topic: str, partitions: int, seconds: float, per_commit: int,
                  out: dict, barrier: threading.Barrier) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    lat: list[float] = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while not c.assignment():
            c.poll(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("no assignment within 60 s")
        barrier.wait(120)
        off = 0
        p = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tps = []
            for _ in range(per_commit):
                tps.append(TopicPartition(topic, p, off))
                p = (p + 1) % partitions
            off += 1
            t = time.perf_counter()
            res = c.commit(offsets=tps, asynchronous=False)
            lat.append(time.perf_counter() - t)
            bad = [tp for tp in res if tp.error]
            if bad:
                raise RuntimeError(f"commit failed: {bad[0].error}")
            c.poll(0)
        out["latencies"] = lat
        out["seconds"] = seconds
    except BaseException as e:
        out["error"] = repr(e)
        try:
            barrier.abort()
        except Exception:
            pass
    finally:
        c.close()


def commit_bench(bootstrap: str, consumers: int, seconds: float, partitions: int, per_commit: int) -> dict:
    topic = f"bench-commit-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions)
    outs = [{} for _ in range(consumers)]
    barrier = threading.Barrier(consumers)
    threads = [threading.Thread(target=commit_worker, daemon=True,
                                args=(bootstrap, topic, partitions, seconds, per_commit, outs[i], barrier))
               for i in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 200)
    errors = [o["error"] for o in outs if "error" in o]
    if errors:
        return {"consumers": consumers, "error": errors[0]}
    lat = sorted(x for o in outs for x in o["latencies"])
    total = len(lat)
    return {"consumers": consumers, "partitions_per_commit": per_commit, "seconds": seconds,
            "commits": total, "commits_per_s": total / seconds,
            "per_consumer_per_s": [len(o["latencies"]) / seconds for o in outs],
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000, "max_ms": lat[-1] * 1000}


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


# ----------------------------------------------------------------------------------- report
def machine() -> dict:
    cpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        pass
    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": cpu, "kernel": platform.release(), "confluent_kafka": ck_version()[0],
            "librdkafka": rdkafka_version()[0],
            "loadavg": " ".join(open("/proc/loadavg").read().split()[:3])}


def fmt_ms(vals: list[float]) -> tuple[str, str, str]:
    if not vals:
        return "–", "–", "–"
    s = sorted(vals)
    return (f"{statistics.median(s):,.0f}", f"{s[-1]:,.0f}", ", ".join(f"{v:,.0f}" for v in vals))


def report(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Consumer groups — {m['date_utc']}", "",
             f"machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, load average at start "
             f"{m['loadavg']}; client confluent-kafka {m['confluent_kafka']} / librdkafka {m['librdkafka']}; "
             f"broker {res.get('broker', {}).get('sha256', 'external')} {res.get('broker', {}).get('args', '')}", "",
             f"## Rebalance time ({res['partitions']} partitions, {res['reps']} repetitions per step)", "",
             "| protocol | step | p50 ms | max ms | timeouts | every run, ms |", "|---|---|---:|---:|---:|---|"]
    for proto, r in res["rebalance"].items():
        if "skipped" in r or "error" in r:
            lines.append(f"| {proto} | – | – | – | – | {r.get('skipped') or r.get('error')} |")
            continue
        for step in ("3->6", "6->3"):
            p50, mx, every = fmt_ms(r[step])
            lines.append(f"| {proto} | {step.replace('->', ' → ')} | {p50} | {mx} | {r['timeouts'][step]} | {every} |")
    for proto, r in res["rebalance"].items():
        if "config" in r:
            lines.append(f"\n{proto}: client config `{json.dumps(r['config'])}`, random pause of "
                         f"0–{r['jitter_ms']:.0f} ms before each change")
    lines += ["", f"## OffsetCommit, synchronous ({res['commit_seconds']:g} s per row, "
              f"{res['commit_partitions']} partition(s) per commit)", "",
              "| consumers (one group each) | commits/s total | commits/s per consumer | p50 ms | p99 ms | max ms |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in res["commits"]:
        if "error" in r:
            lines.append(f"| {r['consumers']} | error: {r['error']} | | | | |")
            continue
        per = r["per_consumer_per_s"]
        lines.append(f"| {r['consumers']} | {r['commits_per_s']:,.0f} | "
                     f"{min(per):,.0f}–{max(per):,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="use this running broker instead of starting one")
    ap.add_argument("--strata-bin", default=os.environ.get("STRATA_BIN", str(ROOT / "target/release/strata")))
    ap.add_argument("--broker-arg", action="append", default=[], help="extra `strata serve` flag (repeatable)")
    ap.add_argument("--data-root", default=str(ROOT / "target/bench-data/groups"))
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--protocols", default="classic,consumer", help="comma list of classic, consumer")
    ap.add_argument("--settle-ms", type=int, default=1000,
                    help="an assignment counts as final once unchanged this long")
    ap.add_argument("--step-timeout", type=float, default=60.0)
    ap.add_argument("--jitter-ms", type=int, default=None,
                    help="random pause (0..N ms) before each membership change; default one heartbeat "
                         "interval: 3000 classic (librdkafka), 5000 consumer (broker default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--consumer-conf", action="append", default=[],
                    help="KEY=VALUE for the rebalance members, e.g. heartbeat.interval.ms=1000 (classic only)")
    ap.add_argument("--commit-seconds", type=float, default=10.0)
    ap.add_argument("--commit-groups", type=int, default=4, help="N for the concurrent row")
    ap.add_argument("--commit-partitions", type=int, default=1, help="partitions per OffsetCommit")
    ap.add_argument("--skip-rebalance", action="store_true")
    ap.add_argument("--skip-commits", action="store_true")
    ap.add_argument("--json", help="write the raw results here")
    a = ap.parse_args()

    broker = None
    res = {"machine": machine(), "partitions": a.partitions, "reps": a.reps,
           "commit_seconds": a.commit_seconds, "commit_partitions": a.commit_partitions,
           "rebalance": {}, "commits": []}
    try:
        if a.bootstrap:
            bootstrap = a.bootstrap
        else:
            broker = Broker(Path(a.strata_bin), Path(a.data_root), a.broker_arg)
            bootstrap = broker.bootstrap
            res["broker"] = {"sha256": broker.sha, "args": " ".join(broker.cmd[broker.cmd.index("--group-initial-rebalance-delay-ms"):])}
            log(f"broker {broker.bin} (sha256 {broker.sha}) on {bootstrap}, pid {broker.proc.pid}")
        apis = api_versions(bootstrap)
        if 11 not in apis:
            raise SystemExit(f"the broker at {bootstrap} does not support JoinGroup (API 11): {sorted(apis)}")
        extra_conf = dict(kv.split("=", 1) for kv in a.consumer_conf)
        if not a.skip_rebalance:
            for proto in a.protocols.split(","):
                if proto == "consumer" and 68 not in apis:
                    res["rebalance"][proto] = {"skipped": "broker does not advertise ConsumerGroupHeartbeat (68)"}
                    log(f"[{proto}] skipped: no API 68")
                    continue
                conf = extra_conf if proto == "classic" else {
                    k: v for k, v in extra_conf.items()
                    if k not in ("heartbeat.interval.ms", "session.timeout.ms", "partition.assignment.strategy")}
                if a.jitter_ms is not None:
                    jitter = a.jitter_ms / 1000
                elif proto == "classic":
                    jitter = int(conf.get("heartbeat.interval.ms", 3000)) / 1000
                else:
                    jitter = 5.0
                try:
                    res["rebalance"][proto] = rebalance_bench(bootstrap, proto, a.reps, a.partitions,
                                                              a.settle_ms / 1000, a.step_timeout, conf,
                                                              jitter, random.Random(a.seed))
                except Exception as e:
                    res["rebalance"][proto] = {"error": repr(e)}
                    log(f"[{proto}] failed: {e!r}")
        if not a.skip_commits:
            for n in sorted({1, a.commit_groups}):
                log(f"OffsetCommit: {n} consumer(s) for {a.commit_seconds:g} s")
                r = commit_bench(bootstrap, n, a.commit_seconds, a.partitions, a.commit_partitions)
                res["commits"].append(r)
                log(f"  -> {r.get('commits_per_s', 0):,.0f} commits/s {r.get('error', '')}")
    finally:
        if broker:
            rc = broker.stop()
            res.setdefault("broker", {})["exit_code"] = rc
            log(f"broker stopped (exit {rc}); log {broker.log_path}")
            if not a.keep_data:
                shutil.rmtree(broker.dir / "data", ignore_errors=True)
    out = report(res)
    print(out)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
