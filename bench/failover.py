#!/usr/bin/env python3
"""Failover benchmark: how long a SIGKILLed broker's partitions, and a SIGKILLed active
controller's metadata, stay unavailable in a three-node Strata cluster, with confluent-kafka
(librdkafka) clients.

    .venv/bin/python bench/failover.py                          # --rounds 20, object WAL on moto
    .venv/bin/python bench/failover.py --wal file --rounds 10 --binary target/ci/strata

Starts an S3-compatible server (moto, from the same virtualenv) and three nodes, each a broker
and a metadata voter (--wal object: the WAL on the object store; --wal file: WALs in one
directory every node reads). A topic of --partitions partitions takes an idempotent acks=all
load (--rate records/s) throughout. Each round:

- broker: SIGKILL a broker that is not the active controller; for each partition it led, the
  time from the kill to the first acknowledgement of a record written to that partition
  (librdkafka follows the leader change by itself); then restart the broker and wait until it
  is back in the metadata;
- controller (every --controller-every rounds): SIGKILL the active controller; the time until
  another node reports itself active, and until CreateTopics through a surviving node succeeds.

Prints a Markdown table of p50/p99/max per measure and the machine; --json keeps every sample.
At the end every acknowledged record of the load is read back and checked (once, at its
offset).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition, libversion
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.read().decode()


class Node:
    def __init__(self, binary: Path, root: Path, node_id: int, args: list[str]):
        self.id, self.binary, self.args = node_id, binary, args
        self.port, self.admin = free_port(), free_port()
        self.dir = root / f"node{node_id}"
        self.log = open(root / f"node{node_id}.log", "ab")
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def launch(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--node-id", str(self.id), "--listen", self.bootstrap,
             "--admin-listen", f"127.0.0.1:{self.admin}", "--data-dir", str(self.dir), *self.args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "STRATA_LOG": "info,openraft=off"})

    def ready(self) -> bool:
        try:
            return http(f"http://127.0.0.1:{self.admin}/healthz") is not None
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def active(self) -> bool:
        try:
            return "strata_controller_active_count 1" in http(f"http://127.0.0.1:{self.admin}/metrics")
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "target" / "release" / "strata"))
    ap.add_argument("--wal", choices=["object", "file"], default="object")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--controller-every", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rate", type=int, default=2000, help="load records/s")
    ap.add_argument("--json")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="strata-failover-"))
    binary = root / "strata"
    shutil.copy2(args.binary, binary)
    moto_port = free_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1")
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                             "-p", str(moto_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    nodes: dict[int, Node] = {}
    try:
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", moto_port)) == 0, 30, "moto")
        time.sleep(0.5)
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{moto_port}/bench", method="PUT"), timeout=5)
        quorum = ",".join(f"{i}@127.0.0.1:{free_port()}" for i in (1, 2, 3))
        store = f"s3://bench?endpoint=http://127.0.0.1:{moto_port}&region=us-east-1"
        for i in (1, 2, 3):
            wal = "object" if args.wal == "object" else f"file:{root}/wal-{i}"
            nodes[i] = Node(binary, root, i, ["--controller-quorum", quorum, "--object-store",
                                              store, "--wal", wal, "--upload-interval-ms", "1000"])
        for n in nodes.values():
            n.launch()
        for n in nodes.values():
            wait(n.ready, 60, f"node {n.id}")
        bootstrap = lambda: ",".join(n.bootstrap for n in nodes.values() if n.alive())  # noqa: E731
        admin = lambda: AdminClient({"bootstrap.servers": bootstrap()})  # noqa: E731
        topic = "failover-bench"
        creator = admin()  # must outlive its future
        creator.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)

        acked: list[tuple[int, int, bytes]] = []
        stop = threading.Event()
        producer = Producer({"bootstrap.servers": bootstrap(), "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5})

        def load():
            seq = 0
            while not stop.is_set():
                started = time.monotonic()
                for _ in range(max(1, args.rate // 100)):
                    producer.produce(topic, value=f"r{seq:09d}".encode(),
                                     partition=seq % args.partitions,
                                     on_delivery=lambda e, m: e is None and acked.append(
                                         (m.partition(), m.offset(), m.value())))
                    seq += 1
                producer.poll(0)
                time.sleep(max(0.0, 0.01 - (time.monotonic() - started)))

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        samples = collections.defaultdict(list)
        for rnd in range(1, args.rounds + 1):
            controller = wait(lambda: next((i for i, n in nodes.items() if n.active()), None),
                              30, "an active controller")
            if rnd % args.controller_every == 0:
                victim = controller
            else:
                md = admin().list_topics(topic, timeout=15)
                led = {p.leader for p in md.topics[topic].partitions.values()}
                victim = next(i for i in nodes if i != controller and i in led)
            md = admin().list_topics(topic, timeout=15)
            lost = [p for p, m in md.topics[topic].partitions.items() if m.leader == victim]
            probe = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "linger.ms": 0})
            probe.list_topics(topic, timeout=10)
            killed = time.monotonic()
            nodes[victim].kill()
            back: dict[int, float] = {}
            if victim == controller:
                wait(lambda: any(n.active() for n in nodes.values() if n.alive()), 30,
                     "a new active controller")
                samples["controller: new active controller, s"].append(time.monotonic() - killed)
                name = f"probe-{rnd}"
                creator = AdminClient({"bootstrap.servers": bootstrap()})
                creator.create_topics([NewTopic(name, 1, 1)])[name].result(30)
                samples["controller: CreateTopics succeeds, s"].append(time.monotonic() - killed)
            for p in lost:
                probe.produce(topic, value=b"probe", partition=p,
                              on_delivery=lambda e, m: e is None and back.setdefault(
                                  m.partition(), time.monotonic() - killed))
            probe.flush(30)
            assert len(back) == len(lost), f"round {rnd}: probes undelivered"
            key = "controller+broker" if victim == controller else "broker"
            samples[f"{key}: partition writable again, s"] += list(back.values())
            log(f"round {rnd}: killed node {victim} ({key}); partitions {lost} back after "
                + ", ".join(f"{back[p]:.2f}s" for p in lost))
            nodes[victim].launch()
            wait(nodes[victim].ready, 60, f"node {victim} back")
            wait(lambda: victim in admin().list_topics(timeout=10).brokers, 30, "re-registered")
        stop.set()
        loader.join()
        assert producer.flush(60) == 0

        # Every acknowledged record once, at its offset.
        c = Consumer({"bootstrap.servers": bootstrap(), "group.id": "check",
                      "enable.partition.eof": True})
        c.assign([TopicPartition(topic, p, 0) for p in range(args.partitions)])
        log_by_part: dict[int, dict[int, bytes]] = collections.defaultdict(dict)
        eof: set[int] = set()
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(args.partitions)}
        while len(eof) < args.partitions:
            for m in c.consume(1000, 1):
                if m.error():
                    if m.offset() >= ends[m.partition()]:
                        eof.add(m.partition())
                    continue
                log_by_part[m.partition()][m.offset()] = m.value()
                if m.offset() + 1 >= ends[m.partition()]:
                    eof.add(m.partition())
        c.close()
        missing = [(p, o) for p, o, v in acked if log_by_part[p].get(o) != v]
        values = collections.Counter(v for part in log_by_part.values() for v in part.values()
                                     if v != b"probe")
        dups = sum(1 for n in values.values() if n > 1)
        log(f"checked {len(acked)} acknowledged records: {len(missing)} missing, {dups} duplicated")

        cpu = platform.processor() or platform.machine()
        print(f"\nmachine: {os.cpu_count()} CPUs ({cpu}), {platform.platform()}, "
              f"librdkafka {libversion()[0]}, WAL {args.wal}, {args.rounds} rounds, "
              f"{args.partitions} partitions, load {args.rate} records/s\n")
        print("| measure | samples | p50 s | p99 s | max s |")
        print("|---|---|---|---|---|")
        for k, xs in samples.items():
            print(f"| {k} | {len(xs)} | {percentile(xs, 0.5):.2f} | {percentile(xs, 0.99):.2f} "
                  f"| {max(xs):.2f} |")
        print(f"\nacknowledged records checked: {len(acked)}, missing {len(missing)}, "
              f"duplicated {dups}")
        if args.json:
            Path(args.json).write_text(json.dumps(samples, indent=1))
        if missing or dups:
            raise SystemExit("acknowledged records lost or duplicated")
    finally:
        for n in nodes.values():
            n.stop()
        for n in nodes.values():
            if n.proc:
                try:
                    n.proc.wait(30)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
        moto.terminate()
        if sys.exc_info()[0] is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root} (node logs) after the failure")


if __name__ == "__main__":
    main()
